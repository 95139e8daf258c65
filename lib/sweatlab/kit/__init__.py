"""The lab kit: what every lab's setup cell uses, one mechanism for all labs.

    from sweatlab.kit import open_lab
    lab = open_lab("02_simd")     # check, stand-ins, energy meter, quoted figures, the record

A check cell:  ``from sweatlab.kit import check`` then ``check("micro_6x4")``.
Instructors' hidden tests: ``from sweatlab.kit import hidden_test`` (see sweatlab.kit.checks).
"""

from sweatlab.kit.checks import hidden_test, public_test
from sweatlab.kit.lab import Lab, check, open_lab
from sweatlab.kit.standins import StandIn

__all__ = ["Lab", "StandIn", "check", "hidden_test", "open_lab", "public_test"]
