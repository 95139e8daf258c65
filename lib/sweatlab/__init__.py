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
    profile    `sweatlab profile`: measure this machine once, write a short report
    doctor     `sweatlab doctor`: the pre-flight check of a learner's setup
    isa        instruction-set families, their peaks here, dispatch switched off in a fresh process (lab 02)
    gemm       lab 02's numba matmul kernels: the dot form and a packed, register-blocked micro-kernel
    parallel   Amdahl's law fitted to a measured scaling curve (lab 02)
    quant      quantization by hand: reference quantizers, SQNR, int4 packing, integer matmul (lab 03)
    serve      one model served many ways: torch int8 engines, ONNX Runtime fp32/int8/int4 (lab 03)
    frugal     doing less work: bundled data, small models, early exit, cascades (lab 04)
    devices    a sourced device table and roofline models of inference per joule (lab 05)
    tinylm     a tiny byte-level transformer, its training, quantized and tensor-parallel forms (lab 06)
    checks     the labs' public checks; grading: the batch grader and its sandboxed child
    course     solutions -> labs generation and the sync checks (course_layout, _source, _build, _check)
    slides     slides/NN_topic.md -> offline HTML decks
    config     course-wide switches read from the environment
    wheelhouse every pinned wheel for each target platform, for an offline classroom (stdlib only)
    class_report  the class's records pooled into one HTML page (`sweatlab class-report`)
    progress   which labs and exercises a learner has done (`sweatlab progress`, a JupyterLab widget)
    cli        the `sweatlab` command: doctor, lab, check, build-labs, execute, nbval, slides, grade, ...
"""

__version__ = "0.1.0"
