"""nerva-xp: Nerva's multilayer perceptrons written once against the Python array API.

Import from the submodules, as in nerva-torch: ``from nerva_xp.layers import LinearLayer``.
"""

__version__ = "0.1.0"
