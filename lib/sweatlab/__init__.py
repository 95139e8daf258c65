"""sweatlab: the measurement library and course tooling of Systems That Sweat.

Modules (one responsibility each):
    timing     bench() and compare(): honest timings, medians, spread, thread settings
    hardware   what machine this is (CPU, ISA features, caches, BLAS, GPUs)
    flops      FLOP and byte counts; arithmetic intensity (a multiply-add is 2 FLOPs)
    roofline   measured peak compute and bandwidth; roofline plots
    peak       the hardware peak: cores x clock x SIMD lanes x FMA units x 2, inputs and assumptions shown
    asm        which floating-point instructions a compiler generated (scalar, packed by width, FMA)
    ladder     lab 01's matmul harness: the float32 bound, check-then-time, reference kernels standing in
    energy     energy sensors (RAPL, NVML) or a labelled estimate, for the devices a job ran on
    energy_data  energy figures shipped with their provenance (Horowitz 2014; one measured GPU server)
    records    append one JSON record of a lab's results
    course     solutions -> labs generation and the sync checks (course_layout, _source, _build, _check)
    cli        the `sweatlab` command: doctor, lab, check, build-labs, execute, nbval, slides, ...
"""

__version__ = "0.1.0"
