"""The grader: `sweatlab grade SUBMISSIONS... [--lab NN] [--hidden DIR] [--timeout S] [--memory MB] [-j N] [--out DIR]`.

- :mod:`.notebook`  read a submission whatever its state; rebuild it from the pristine lab and its answer cells
- :mod:`.sandbox`   the child process that runs learner code, with time, memory, process and output limits
- :mod:`.child`     the program running in that child (cells and calls in, JSON out)
- :mod:`.grader`    run the tests here, on plain data from the child; batches with -j
- :mod:`.report`    grades.csv, feedback/<submission>.md, results.json
- :mod:`.gradescope` one learner's results.json for Gradescope; the autograder zip (`sweatlab gradescope`)
"""
