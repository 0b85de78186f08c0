"""The model zoo: ``build_model(name, (C, H, W), num_classes, **params)`` and ``list_models()``.

Every model outputs logits (softmax belongs to the loss and to predict), carries ``model.config``
(enough to rebuild it before loading weights), ``model.default_optimizer`` and
``model.regularization_loss()``. Architectures: dnn, cnn, fmnist_baseline, shallownet, lenet,
minivggnet, resnet, linear (softmax regression) and knn (non-gradient: ``fit_arrays``).
"""

from pixelforge.models.registry import ModelSpec, build_model, get_spec, list_models, register

__all__ = ["ModelSpec", "build_model", "get_spec", "list_models", "register"]
