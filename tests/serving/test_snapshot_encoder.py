"""The scoring snapshot refuses, before exporting anything, an encoder setting the model was
not trained with (it would re-encode every review only to refuse the features at the end)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from encoders.features import FeatureMismatchError
from serving.api.scoring import take
from serving.settings import Settings


@pytest.mark.parametrize(("trained", "int8"), [("m-0123-int8", False), ("m-0123", True)])
def test_other_encoder_is_refused_before_the_export(
    tmp_path: Path, trained: str, int8: bool
) -> None:
    settings = Settings(state_dir=tmp_path, neo4j_port=1, encode_int8=int8)  # nothing listens
    artifact = cast(Any, SimpleNamespace(version="v1", config={"text_model": trained}))
    with pytest.raises(
        FeatureMismatchError, match=f"RISKGRAPH_ENCODE_INT8={str(not int8).lower()}"
    ):
        take(settings, artifact)
