"""Build the Cython kernels in pyx/ into extension modules of cnn_core.

Compiler directives are set once here.  CNN_CORE_DEBUG_CYTHON=1 turns
bounds checking (and wraparound checks) back on for a debug build.
OpenMP is detected by compiling a tiny test program; without it the kernels
build serially and ``cnn_core.openmp_enabled()`` returns False.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("CNN_CORE_DEBUG_CYTHON") == "1"
HERE = Path(__file__).parent
MODULES = ["_im2col", "_pool", "_batchnorm", "_elementwise", "_parallel", "_winograd"]

OMP_TEST = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0 && omp_get_max_threads() > 0);
    return 0;
}
"""


def _openmp_flags(compiler):
    """Return (compile_args, link_args) that enable OpenMP, or None."""
    if os.environ.get("CNN_CORE_NO_OPENMP") == "1":
        return None
    ctype = compiler.compiler_type
    if ctype == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang has no bundled runtime: libomp from Homebrew (or a prefix).
        prefix = os.environ.get("LIBOMP_PREFIX") or next(
            (p for p in ("/opt/homebrew/opt/libomp", "/usr/local/opt/libomp") if os.path.isdir(p)),
            None,
        )
        candidates = [(["-fopenmp"], ["-fopenmp"])]
        if prefix:
            candidates.insert(0, (["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                                  [f"-L{prefix}/lib", "-lomp"]))
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OMP_TEST)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "omp_test")
            compiler.link_executable(objs, exe, extra_postargs=lflags)
            if ctype == "msvc":
                exe += ".exe"
            out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip() == "1":
                return cflags, lflags
        except Exception:  # compile or link failed: try the next candidate
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        flags = _openmp_flags(self.compiler)
        ctype = self.compiler.compiler_type
        opt = ["/O2"] if ctype == "msvc" else ["-O3", "-fno-math-errno"]
        for ext in self.extensions:
            ext.extra_compile_args = list(opt)
            ext.extra_link_args = []
            if flags:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
            ext.define_macros = list(ext.define_macros or []) + [
                ("CNN_CORE_OPENMP", "1" if flags else "0"),
            ]
        print(f"cnn_core: OpenMP {'enabled' if flags else 'NOT available: building serial kernels'}")
        super().build_extensions()


extensions = [
    Extension(
        f"cnn_core.{name}",
        [f"pyx/{name}.pyx"],
        include_dirs=[np.get_include(), "pyx"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives=dict(
            language_level=3,
            boundscheck=DEBUG,
            wraparound=False,
            initializedcheck=DEBUG,
            nonecheck=False,
            cdivision=True,
        ),
    ),
    cmdclass={"build_ext": BuildExt},
)
