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
