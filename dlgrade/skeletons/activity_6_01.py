"""Activity 6.01 — Sentiment of Amazon reviews with a stacked LSTM.

Clean and stem the review texts, turn them into padded integer sequences, and train a
two-layer LSTM classifier. The grader calls `preprocess`, `make_sequences`, `build_model`,
`train` and `predict_labels`, passing the texts and labels in.
"""


def preprocess(texts):
    """Clean each review in ``texts`` and return a list of ``str``, one per review.

    For each text: lower-case it, split it with ``nltk.word_tokenize``, drop punctuation
    (the characters of ``string.punctuation``) and NLTK's English stop words, Porter-stem
    the remaining tokens and join them with single spaces. The dataset's first training
    review becomes ``"stune even non-gam sound track beauti paint seneri mind well would
    recomend ..."``.
    """
    raise NotImplementedError("activity_6_01.preprocess is not implemented yet")


def make_sequences(train_texts, test_texts, *, vocab_size=10_000, maxlen=100):
    """Return ``(X_train, X_test)``: padded integer sequences of shape ``(n, maxlen)``.

    Fit a ``Tokenizer(num_words=vocab_size)`` on ``train_texts`` only, convert both lists
    with ``texts_to_sequences`` and pad them with ``pad_sequences(..., maxlen=maxlen)``.
    Both still import from ``tensorflow.keras.preprocessing`` in TF 2.21. For the book's
    25,000 training reviews X_train is ``(25000, 100)``.
    """
    raise NotImplementedError("activity_6_01.make_sequences is not implemented yet")


def build_model(vocab_size=10_000):
    """Build and return the compiled stacked-LSTM classifier.

    Layers: Embedding(vocab_size, 32) -> SpatialDropout1D(0.4) ->
    LSTM(64, return_sequences=True) -> LSTM(64) -> Dropout(0.4) -> Dense(32, relu) ->
    Dropout(0.5) -> Dense(32, relu) -> Dropout(0.5) -> Dense(1, sigmoid): 381,025 parameters
    with the defaults. Start with ``keras.Input(shape=(None,))`` so the model is built. (The
    book's Sequential has no ``Input``; Keras 3 leaves such a model unbuilt, with 0
    parameters, until it sees data, and the grader then builds it for sequences of 100 before
    counting.) Compile with ``"rmsprop"``, ``"binary_crossentropy"`` and
    ``metrics=["accuracy"]``.
    A ``keras.Model`` subclass is graded too, by the Keras layers its ``call()`` goes
    through; a custom layer with weights of its own is not (docs/submission-contract.md).
    """
    raise NotImplementedError("activity_6_01.build_model is not implemented yet")


def train(model, X, y, *, epochs=5, batch_size=128, validation_split=0.2):
    """Fit ``model`` on ``(X, y)`` and return ``history.history``.

    Pass ``epochs``, ``batch_size`` and ``validation_split`` through to ``model.fit``, and
    train the model you are given on the ``X`` and ``y`` you are given (the grader passes its
    own copy of the book's model and its own sequences). Return the plain dict with
    ``"loss"``, ``"accuracy"``, ``"val_loss"`` and ``"val_accuracy"``, one value per epoch.
    """
    raise NotImplementedError("activity_6_01.train is not implemented yet")


def predict_labels(model, X):
    """Return the predicted class of each row of ``X`` as a 1-D int numpy array of 0/1.

    Keras 3 has no ``predict_classes``: threshold ``model.predict(X)`` at 0.5 and flatten,
    so the result has shape ``(len(X),)``. The book reaches a test accuracy of 0.85864.
    """
    raise NotImplementedError("activity_6_01.predict_labels is not implemented yet")
