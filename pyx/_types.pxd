# Fused floating type shared by every kernel: one source, float32 and float64.
ctypedef fused floating:
    float
    double
