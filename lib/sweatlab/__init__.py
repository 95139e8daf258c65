"""sweatlab: the measurement library and course tooling of Systems That Sweat.

The package's folders are its layers, lowest first; a module imports only from its own folder
or a lower layer, and no modules import each other in a circle (``tests/test_layers.py``):

    measure/  what any lab measures with: timing (bench, compare), hardware (this machine), flops,
              roofline, peak (cores x clock x lanes x FMA x 2), energy (sensors or a labelled estimate,
              its inputs read once), energy_data, records, asm (what a compiler generated),
              fresh (a measurement in a fresh process with switches), onednn (oneDNN's verbose log),
              config (quick mode)
    topics/   what the labs study: ladder (lab 01's matmuls), gemm, isa, isa_jobs, parallel (lab 02),
              quant, serve (lab 03), frugal (lab 04), devices (lab 05), tinylm (lab 06)
    course/   solutions -> labs: layout, source, build, check (``make check``), figures (the run's
              figures quoted in prose, decks and guide), slides (offline HTML decks)
    kit/      what a lab's setup cell gets from ``open_lab``: checks (the test framework), stand-ins,
              the meter, quoted figures, the record; report (how the class report reads a record)
    labs/     one package per lab: its checks, stand-ins and record (``labs/lab01_matmul/``)
    grading/  the batch grader: the submission pipeline, its sandboxed child, Gradescope
    tools/    the commands: cli (``sweatlab``), doctor, profile, progress, class_report, wheelhouse
"""

__version__ = "0.1.0"
