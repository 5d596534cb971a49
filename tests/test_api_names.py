"""Every name a nerva-torch 1.0 user imports is importable from the same nerva_xp module (§1.8).

The lists are nerva-torch's public names per module, re-exports included, minus the PyTorch-only
helpers (set_torch_options, disable_gpu, loss_functions_torch).
"""

import importlib

import pytest

NERVA_TORCH_NAMES = {
    "matrix_operations": (
        "Matrix epsilon is_vector is_column_vector is_row_vector vector_size is_square dot zeros "
        "ones identity product hadamard diag Diag elements_sum column_repeat row_repeat "
        "columns_sum rows_sum columns_max rows_max columns_mean rows_mean apply exp log "
        "reciprocal square sqrt inv_sqrt log_sigmoid abs clip"
    ),
    "utilities": (
        "set_numpy_options pp_numpy pp StopWatch FunctionCall parse_function_call "
        "load_dict_from_npz save_dict_to_npz"
    ),
    "activation_functions": (
        "Relu Relu_gradient Leaky_relu Leaky_relu_gradient All_relu All_relu_gradient "
        "Hyperbolic_tangent Hyperbolic_tangent_gradient Sigmoid Sigmoid_gradient Srelu "
        "Srelu_gradient ActivationFunction ReLUActivation LeakyReLUActivation AllReLUActivation "
        "HyperbolicTangentActivation SigmoidActivation SReLUActivation parse_activation "
        "parse_function_call Matrix"
    ),
    "optimizers": (
        "Optimizer CompositeOptimizer GradientDescentOptimizer MomentumOptimizer "
        "NesterovOptimizer parse_optimizer parse_function_call"
    ),
    "softmax_functions": (
        "softmax softmax_jacobian stable_softmax stable_softmax_jacobian log_softmax "
        "log_softmax_jacobian stable_log_softmax stable_log_softmax_jacobian SoftmaxFunction "
        "StableSoftmaxFunction LogSoftmaxFunction StableLogSoftmaxFunction Diag column_repeat "
        "exp hadamard identity is_row_vector log reciprocal row_repeat rows_max rows_sum Matrix"
    ),
    "weight_initializers": (
        "set_bias_zero set_bias_uniform set_bias_normal set_weights_uniform set_weights_normal "
        "set_weights_xavier_uniform set_weights_xavier_normal set_weights_he_normal "
        "set_weights_he_uniform set_weights_zero set_layer_weights parse_function_call Matrix"
    ),
    "layers": (
        "Layer LinearLayer ActivationLayer SReLULayer SoftmaxLayer LogSoftmaxLayer "
        "BatchNormalizationLayer parse_linear_layer ActivationFunction SReLUActivation "
        "parse_activation column_repeat columns_mean columns_sum diag elements_sum hadamard "
        "identity ones inv_sqrt row_repeat rows_sum vector_size zeros Matrix CompositeOptimizer "
        "parse_optimizer log_softmax softmax set_layer_weights"
    ),
    "learning_rate": (
        "LearningRateScheduler ConstantScheduler TimeBasedScheduler StepBasedScheduler "
        "MultiStepLRScheduler ExponentialScheduler parse_learning_rate"
    ),
    "loss_functions": (
        "squared_error_loss squared_error_loss_gradient Squared_error_loss "
        "Squared_error_loss_gradient cross_entropy_loss cross_entropy_loss_gradient "
        "Cross_entropy_loss Cross_entropy_loss_gradient softmax_cross_entropy_loss "
        "softmax_cross_entropy_loss_gradient softmax_cross_entropy_loss_gradient_one_hot "
        "Softmax_cross_entropy_loss "
        "Softmax_cross_entropy_loss_gradient Softmax_cross_entropy_loss_gradient_one_hot "
        "stable_softmax_cross_entropy_loss stable_softmax_cross_entropy_loss_gradient "
        "stable_softmax_cross_entropy_loss_gradient_one_hot "
        "Stable_softmax_cross_entropy_loss Stable_softmax_cross_entropy_loss_gradient "
        "Stable_softmax_cross_entropy_loss_gradient_one_hot logistic_cross_entropy_loss "
        "logistic_cross_entropy_loss_gradient Logistic_cross_entropy_loss "
        "Logistic_cross_entropy_loss_gradient negative_log_likelihood_loss "
        "negative_log_likelihood_loss_gradient Negative_log_likelihood_loss "
        "Negative_log_likelihood_loss_gradient LossFunction SquaredErrorLossFunction "
        "CrossEntropyLossFunction SoftmaxCrossEntropyLossFunction "
        "StableSoftmaxCrossEntropyLossFunction LogisticCrossEntropyLossFunction "
        "NegativeLogLikelihoodLossFunction parse_loss_function Sigmoid column_repeat dot "
        "elements_sum hadamard log log_sigmoid reciprocal rows_sum Matrix log_softmax softmax "
        "stable_log_softmax stable_softmax"
    ),
    "datasets": (
        "to_one_hot from_one_hot DataLoader max_ infer_num_classes create_npz_dataloaders "
        "Matrix load_dict_from_npz"
    ),
    "multilayer_perceptron": (
        "MultilayerPerceptron parse_multilayer_perceptron BatchNormalizationLayer LinearLayer "
        "parse_linear_layer Matrix load_dict_from_npz pp"
    ),
    "training": (
        "TrainOptions print_epoch_header print_epoch_line print_epoch_footer "
        "print_batch_debug_info compute_accuracy compute_loss compute_statistics "
        "stochastic_gradient_descent stochastic_gradient_descent_plain train DataLoader "
        "create_npz_dataloaders to_one_hot LearningRateScheduler parse_learning_rate "
        "parse_loss_function LossFunction Matrix MultilayerPerceptron "
        "parse_multilayer_perceptron StopWatch pp set_numpy_options"
    ),
}

CASES = [(module, name) for module, names in NERVA_TORCH_NAMES.items() for name in names.split()]


@pytest.mark.parametrize(("module", "name"), CASES)
def test_nerva_torch_name_is_importable(module, name):
    assert hasattr(importlib.import_module(f"nerva_xp.{module}"), name)


def test_package_init_reexports_nothing():
    import types

    import nerva_xp

    public = [
        name
        for name, value in vars(nerva_xp).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]
    assert public == []


def test_spec_error_is_value_and_runtime_error():
    from nerva_xp.utilities import SpecError

    assert issubclass(SpecError, ValueError) and issubclass(SpecError, RuntimeError)
