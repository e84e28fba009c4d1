"""Activity 2.01 — Sonar mines vs. rocks with a multilayer perceptron.

Load the sonar data set, build a small MLP that tells mines from rocks, and train it.
The grader calls `load_data`, `build_model` and `train`. It passes the CSV path in for you;
to try it yourself, get the path from the data layer (`from dlgrade.data import path`, then
`path("sonar")`) rather than hard-coding a path that only works on your laptop.
"""


def load_data(path):
    """Read the sonar CSV at ``path`` and return ``(X, y)``.

    The file has 208 rows, 60 numeric feature columns and a ``Class`` column with values Mine or
    Rock. Return ``X``, the 60 feature columns in order, shape ``(n, 60)``: a float array or,
    as the book does, the DataFrame ``df.iloc[:, :-1]``. Return ``y`` as 0/1 labels of shape
    ``(n, 1)``: encode ``Class`` with sklearn's ``LabelEncoder`` as the book does, then reshape
    the labels to a column. Read the file at ``path``: the grader passes its own copies (one
    of them has 50 rows), and a fixed path works only on your laptop.
    """
    raise NotImplementedError("activity_2_01.load_data is not implemented yet")


def build_model(input_dim=60):
    """Build and return a compiled Keras model (the book's is a ``Sequential``).

    Layers: Dense(300, relu) -> Dense(200, relu) -> Dense(100, relu) -> Dense(1, sigmoid),
    taking ``input_dim`` features (start with ``keras.Input(shape=(input_dim,))``, or pass
    ``input_dim=input_dim`` to the first Dense as the book does). With ``input_dim=60`` that is
    98,701 parameters. Compile with optimizer ``"adam"`` (Adam's default learning rate, 0.001),
    loss ``"binary_crossentropy"`` and ``metrics=["accuracy"]``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_2_01.build_model is not implemented yet")


def train(model, X, y, *, epochs=30):
    """Fit ``model`` on ``(X, y)`` for ``epochs`` epochs and return ``history.history``.

    Train the model you are given on the data you are given: the grader passes its own copy of
    the book's model and the rows it read itself, then checks the trained weights. Return the
    plain dict from ``model.fit(...).history``: keys ``"loss"`` and ``"accuracy"``, each a list
    with one value per epoch. With the book's 30 epochs the training accuracy reaches 1.0.
    """
    raise NotImplementedError("activity_2_01.train is not implemented yet")
