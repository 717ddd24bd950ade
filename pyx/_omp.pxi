# OpenMP runtime queries that compile with or without OpenMP
# (setup.py defines CNN_CORE_OPENMP to 1 or 0).
cdef extern from *:
    """
    #if CNN_CORE_OPENMP
    #include <omp.h>
    static int cc_omp_max_threads(void) { return omp_get_max_threads(); }
    static int cc_omp_enabled(void) { return 1; }
    #else
    static int cc_omp_max_threads(void) { return 1; }
    static int cc_omp_enabled(void) { return 0; }
    #endif
    """
    int cc_omp_max_threads() noexcept nogil
    int cc_omp_enabled() noexcept nogil
