"""Reference solutions: the book's code, modernised for TensorFlow 2.21 / Keras 3."""
