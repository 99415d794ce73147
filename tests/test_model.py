"""The torch model: frozen embeddings, token weights and the mask, padding-free pooling, its dropout."""

import numpy as np
import pytest
import torch

from wldetect.errors import WLDetectError
from wldetect.steps.model import LanguageDetectionModel, drop_, pool_padded

V, H, C = 30, 6, 4


def make_model(mask=None, pooling="logsumexp", dropout=0.0, seed=0):
    torch.manual_seed(seed)
    embeddings = torch.randn(V, H, generator=torch.Generator().manual_seed(1))
    return LanguageDetectionModel(embeddings, C, dropout=dropout, pooling=pooling, token_mask=mask)


def test_embeddings_are_a_frozen_buffer_kept_out_of_checkpoints():
    model = make_model()
    assert "embeddings" in dict(model.named_buffers())
    assert all(name != "embeddings" for name, _ in model.named_parameters())
    assert "embeddings" not in model.state_dict()  # checkpoints never carry a copy of the matrix
    assert set(model.state_dict()) == {"token_weights", "projection.weight", "projection.bias"}
    assert model.token_weights.shape == (V, 1) and model.token_weights.requires_grad


def test_unmasked_weights_start_at_one_and_masked_at_exactly_zero_and_stay_trainable():
    mask = torch.ones(V, dtype=torch.bool)
    mask[[3, 7, 11]] = False
    model = make_model(mask)
    weights = model.token_weights.detach().reshape(-1)
    assert torch.all(weights[[3, 7, 11]] == 0.0)
    assert torch.all(weights[mask] == 1.0)
    assert model.token_weights.requires_grad  # not frozen

    ids = torch.tensor([[3, 7, 1, 2]])
    loss = torch.nn.functional.cross_entropy(model(ids, torch.ones_like(ids, dtype=torch.bool)), torch.tensor([2]))
    loss.backward()
    grad = model.token_weights.grad.reshape(-1)
    assert grad[3] != 0 and grad[7] != 0  # masked tokens that occur receive a gradient
    assert grad[11] == 0  # a token that does not occur gets none


def test_a_mask_of_the_wrong_length_is_refused_with_both_sizes():
    with pytest.raises(WLDetectError, match=r"Token mask shape doesn't match vocab_size.*\(29,\).*30"):
        make_model(torch.ones(V - 1, dtype=torch.bool))


@pytest.mark.parametrize("pooling", ["logsumexp", "max", "average"])
def test_padding_never_contributes(pooling):
    model = make_model(pooling=pooling).eval()
    sequences = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    longest = max(map(len, sequences))
    for pad_id in (0, 12):  # whatever id sits under the padding
        ids = torch.full((3, longest), pad_id)
        mask = torch.zeros(3, longest, dtype=torch.bool)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = True
        batched = model(ids, mask)
        for i, seq in enumerate(sequences):
            alone = model(torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.bool))
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-6, atol=1e-6)


def test_token_logits_are_the_lookup_formula_and_pooling_matches_its_definition():
    model = make_model().eval()
    with torch.no_grad():
        model.token_weights.uniform_(-2, 2)
        ids = torch.tensor([4, 9, 9, 17])
        expected = (
            model.embeddings[ids] * model.token_weights[ids]
        ) @ model.projection.weight.T + model.projection.bias
        logits = model.token_logits(ids)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
        mask = torch.ones(1, 4, dtype=torch.bool)
        torch.testing.assert_close(pool_padded(logits, mask, "logsumexp")[0], torch.logsumexp(expected, 0))
        torch.testing.assert_close(pool_padded(logits, mask, "max")[0], expected.max(0).values)
        torch.testing.assert_close(pool_padded(logits, mask, "average")[0], expected.mean(0))


def test_an_example_without_tokens_gets_zero_logits_and_no_nan_gradient():
    model = make_model()
    ids = torch.tensor([[5, 6], [0, 0]])
    mask = torch.tensor([[True, True], [False, False]])
    logits = model(ids, mask)
    assert torch.all(logits[1] == 0)
    logits.sum().backward()
    assert torch.isfinite(model.projection.weight.grad).all()


def test_dropout_zeroes_about_p_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    keep = drop_(x, 0.1)
    assert abs((x == 0).float().mean().item() - 0.1) < 0.005
    assert abs(keep - 0.9) < 1e-4
    assert abs((x / keep).mean().item() - 1.0) < 0.01
    model = make_model(dropout=0.5).eval()
    ids, mask = torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.bool)
    torch.testing.assert_close(model(ids, mask), model(ids, mask))  # no dropout in eval mode
    model.train()
    assert not torch.equal(model(ids, mask), model(ids, mask))


def test_the_rng_that_dropout_uses_is_torch_global_one():
    model = make_model(dropout=0.3).train()
    ids, mask = torch.arange(1, 21).reshape(2, 10), torch.ones(2, 10, dtype=torch.bool)
    torch.manual_seed(5)
    first = model(ids, mask)
    torch.manual_seed(5)
    np.testing.assert_array_equal(first.detach().numpy(), model(ids, mask).detach().numpy())
