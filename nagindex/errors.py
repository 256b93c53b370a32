"""The errors nagindex reports to users.

Each carries a message meant to be read by a person: it names the file, line,
row or field at fault. The CLI prints the message alone, without a traceback.
"""


class NagindexError(Exception):
    """Base class: something the user can fix."""


class InputError(NagindexError):
    """A corpus or targets record that cannot be used as it is."""


class IndexStateError(NagindexError):
    """An index that is missing, unfinished, damaged or incompatible."""


class Unreachable(NagindexError):
    """Storage that a connection to failed: nothing is wrong with the data, and a rerun once it is back resumes."""


class DiskFull(NagindexError):
    """A file that its file system had no room for: what was written before it is kept, and a rerun resumes."""


class CodeOutOfRange(ValueError):
    """A stored code names a neuron the backbone does not have: the codes are damaged.

    Raised by the scoring kernels, which see only rows of an array;
    ``Index.damaged_code`` turns it into an ``IndexStateError`` naming the file
    and document.
    """

    def __init__(self, row: int, code: int, neurons: int):
        super().__init__(f"code {code} at row {row} is out of range for a table of {neurons} neurons")
        self.row, self.code, self.neurons = row, code, neurons
