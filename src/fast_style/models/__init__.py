"""Networks: the transform network and the frozen VGG loss network."""

from fast_style.models.transformer import TransformerNet, build_transformer
from fast_style.models.vgg import VGGFeatures

__all__ = ["TransformerNet", "VGGFeatures", "build_transformer"]
