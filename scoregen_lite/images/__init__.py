"""MNIST: the data, the U-Net, image training, evaluation on held-out digits, classifiers, checkpoints
and the command line (``python -m scoregen_lite ...``). Used by notebooks 07-10 as ``sg.mnist``, ``sg.data``."""
