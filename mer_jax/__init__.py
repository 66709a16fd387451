"""mer-jax: bimodal (audio + lyrics) music emotion recognition in JAX/Flax.

Submodules are imported explicitly (``from mer_jax import vgg``) so that light
modules such as ``audio_features`` can be used in worker processes without
importing JAX or TensorFlow.
"""
