"""A classifier whose first layer is frozen (``requires_grad=False``), as a head on fixed features is."""

from lightning_lrsched.models import SyntheticClassifier


class FrozenLayerClassifier(SyntheticClassifier):
    def __init__(self, **kwargs) -> None:
        super().__init__(hidden=(8,), **kwargs)
        self.net[0].requires_grad_(False)
