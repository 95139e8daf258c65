"""One package per lab: its checks, stand-ins and record (``labs/lab01_matmul/``).

A lab's package may also live outside the library: each folder named in ``SWEAT_LABS_PATH``
(separated like PATH) that holds ``labNN_topic/`` packages adds them here, so a lab kept elsewhere
(an instructor's own, a test's throwaway one) needs no edit to the library. The library's own
labs come first.
"""

import os

__path__ += [p for p in os.environ.get("SWEAT_LABS_PATH", "").split(os.pathsep) if p]
