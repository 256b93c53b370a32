"""The query path: targets to profiles, exact and approximate scoring, budgets, output."""
from .budget import Budget, parse_size
from .output import write_selection
from .profile import Profiles, ScoreSpec
from .selector import Selection, Selector
from .targets import Targets, read_targets

__all__ = ["Budget", "Profiles", "ScoreSpec", "Selection", "Selector", "Targets", "parse_size", "read_targets", "write_selection"]
