"""Exit statuses of the cgkit command, one IntEnum (as httpie's ExitStatus)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a cgkit invocation ended with."""

    OK = 0
    #: invalid input (config file, arguments) or a failed check (validate, doctor, policy check)
    FAILED = 1
    #: wrong usage of the command itself (Typer/Click's own code)
    USAGE = 2
    #: the engine (Pulumi) failed an operation
    ENGINE = 3
    #: interrupted (Ctrl-C)
    INTERRUPTED = 130
