"""Deep-RL for SR-EM: state features, the Gymnasium environment, the filtered per-instance Q-networks and their training."""
