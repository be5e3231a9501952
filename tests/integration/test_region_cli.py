"""The README's auditor step: ``export ... AWS_REGION=REGION`` then the reading commands,
with "your usual AWS credentials", i.e. a profile that names a region of its own.

boto3 alone reads no ``AWS_REGION`` and takes the profile's region, so the commands
looked for the table in the wrong region and answered "table not found". They resolve
the region as the AWS CLI does now: ``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
the profile's (``--profile`` or ``AWS_PROFILE``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint_journal.local import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, LocalDeployment
from tests.integration.cli_runner import run_cli

# A region the deployment is not in: what the auditor's own profile names.
ELSEWHERE = "ap-southeast-2"


@pytest.fixture()
def profiles(tmp_path: Path, moto_deployment: LocalDeployment) -> dict[str, str | None]:
    """Variables for an AWS config whose default profile names ELSEWHERE, and a profile
    ``stack`` (with its own credentials) that names the deployment's region."""
    assert moto_deployment.region_name != ELSEWHERE
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text(f"[default]\nregion = {ELSEWHERE}\n"
                      f"[profile stack]\nregion = {moto_deployment.region_name}\n")
    credentials.write_text(f"[stack]\naws_access_key_id = {LOCAL_ACCESS_KEY}\n"
                           f"aws_secret_access_key = {LOCAL_SECRET_KEY}\n")
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_REGION": None, "AWS_DEFAULT_REGION": None}


def test_aws_region_alone_beats_the_profiles_region(
        moto_deployment: LocalDeployment, profiles: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dep = moto_deployment
    ok = run_cli(dep, monkeypatch, capsys, ["threads", "--json"],
                 env={**profiles, "AWS_REGION": dep.region_name})
    assert ok.code == 0, ok.err
    assert "threads" in ok.json()

    # Without it, the profile's region is used, and the message says where it looked.
    lost = run_cli(dep, monkeypatch, capsys, ["threads"], env=profiles)
    assert lost.code == 1
    assert f"was not found in {ELSEWHERE}" in lost.err
    assert "region (--region, AWS_REGION, AWS_DEFAULT_REGION, the profile's)" in lost.err

    # --profile picks the profile's credentials and region, as in the AWS CLI.
    named = run_cli(dep, monkeypatch, capsys, ["threads", "--json", "--profile", "stack"],
                    env=profiles)
    assert named.code == 0, named.err
