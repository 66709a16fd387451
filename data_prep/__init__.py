"""Dataset preparation: manifest readers, the synthetic demo dataset, TFDS builders."""
