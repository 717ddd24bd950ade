"""The book's first computational-graph layers: multiply and add nodes."""
from .base import Layer


class MulLayer(Layer):
    """out = x * y; backward gives (dout * y, dout * x)."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class AddLayer(Layer):
    """out = x + y; backward passes dout to both inputs."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1
