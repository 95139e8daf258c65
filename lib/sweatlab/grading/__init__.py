"""The grader: `sweatlab grade SUBMISSIONS... [--lab NN] [--hidden DIR] [--timeout S] [--memory MB] [-j N] [--out DIR]`.

- :mod:`.notebook`   read a submission whatever its state; rebuild it from the pristine lab and its answer cells
- :mod:`.sandbox`    the child process that runs learner code: namespaces, an unprivileged user, time, memory,
                     process, CPU, disk and output limits
- :mod:`.child`      the program running in that child (cells and calls in, JSON out)
- :mod:`.pipeline`   the one pipeline: a lab's tests run on a submission in the child, judged here on plain data,
                     speed timed from here (``grade``, ``progress`` and the Gradescope runner all use it); which
                     cells answer which exercise, from the cells' metadata
- :mod:`.submission` one graded submission as plain data (SubmissionGrade)
- :mod:`.grader`     grading files: which lab, hidden tests, cores lent per job, names as written, batches with -j
- :mod:`.store`      each submission's result on disk the moment it is graded (--resume, Ctrl-C)
- :mod:`.report`     grades.csv, feedback/<key>.md, results.json, reflections.md, rebuilt from the store
- :mod:`.gradescope` one learner's results.json for Gradescope; the autograder zip (`sweatlab gradescope`)
"""
