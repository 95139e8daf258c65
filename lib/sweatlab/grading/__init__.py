"""The grader: `sweatlab grade SUBMISSIONS... [--lab NN] [--hidden DIR] [--timeout S] [--memory MB] [-j N] [--out DIR]`.

- :mod:`.notebook`  read a submission whatever its state; rebuild it from the pristine lab and its answer cells
- :mod:`.sandbox`   the child process that runs learner code: namespaces, an unprivileged user, time, memory,
                    process, CPU, disk and output limits
- :mod:`.child`     the program running in that child (cells and calls in, JSON out)
- :mod:`.grader`    run the tests here, on plain data from the child, speed timed from here; batches with -j
- :mod:`.store`     each submission's result on disk the moment it is graded (--resume, Ctrl-C)
- :mod:`.report`    grades.csv, feedback/<key>.md, results.json, reflections.md, rebuilt from the store
- :mod:`.gradescope` one learner's results.json for Gradescope; the autograder zip (`sweatlab gradescope`)
"""
