"""The names ``gradwise chain`` offers, apart from the chain itself (chain.py), whose table
of activations holds torch functions: ``gradwise chain --help`` lists them without torch."""

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu")
SCENARIOS = ("vanishing", "exploding")
