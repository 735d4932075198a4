"""What a run asks SLURM for (fast_style.slurm) and how the launcher passes it to submitit.

Pure functions of the composed config; the jobs themselves run in test_slurm.py.
"""

from __future__ import annotations

import pytest
from helpers import compose_train
from omegaconf import OmegaConf

from fast_style.errors import FastStyleError
from fast_style.slurm import device_count, slurm_resources, submission_error
from hydra_plugins.fast_style_slurm.launcher import _executor_parameters

NO_LAUNCHER_VALUES = {"nodes": None, "tasks_per_node": None, "gpus_per_node": None, "cpus_per_task": None}


def _never_asked() -> bool:
    raise AssertionError("sinfo must only be asked for accelerator=auto")


def _resources(overrides, *, launcher=None, gpus_available=_never_asked):
    cfg = OmegaConf.to_container(compose_train(overrides), resolve=False)
    return slurm_resources(cfg, launcher={**NO_LAUNCHER_VALUES, **(launcher or {})}, gpus_available=gpus_available)


def test_cpu_job_asks_for_no_gpu_and_one_cpu_per_loader_worker_plus_one():
    assert _resources(["trainer.accelerator=cpu", "data.num_workers=3"]) == {
        "nodes": 1, "tasks_per_node": 1, "gpus_per_node": None, "cpus_per_task": 4}


def test_gpu_ddp_job_gets_one_task_and_one_gpu_per_device_on_every_node():
    assert _resources(["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4", "trainer.num_nodes=2",
                       "data.num_workers=0"]) == {"nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4, "cpus_per_task": 1}


@pytest.mark.parametrize("has_gpus, expected", [(True, 2), (False, None)])
def test_auto_accelerator_follows_what_the_partition_offers(has_gpus, expected):
    got = _resources(["trainer.accelerator=auto", "trainer.devices=2"], gpus_available=lambda: has_gpus)
    assert got["gpus_per_node"] == expected and got["tasks_per_node"] == 2


def test_values_set_under_hydra_launcher_win():
    got = _resources(["trainer.accelerator=gpu", "trainer.devices=4"],
                     launcher={"gpus_per_node": 8, "cpus_per_task": 10, "tasks_per_node": 4})
    assert (got["gpus_per_node"], got["cpus_per_task"], got["tasks_per_node"]) == (8, 10, 4)


@pytest.mark.parametrize("devices, count", [(3, 3), ("2", 2), ([0, 2], 2), ("0,1,3", 3)])
def test_device_count_of_lightning_device_values(devices, count):
    assert device_count(devices, accelerator="gpu", key="trainer.") == count


def test_device_count_auto_is_one_on_cpu_and_an_error_naming_the_key_on_gpu():
    assert device_count("auto", accelerator="cpu", key="trainer.") == 1
    with pytest.raises(FastStyleError, match=r"trainer\.devices=auto: .*set trainer\.devices=N"):
        device_count("auto", accelerator="gpu", key="trainer.")


def test_stylize_job_reads_devices_from_the_top_level_and_asks_one_cpu():
    cfg = {"accelerator": "cpu", "devices": 2, "input": "photos"}
    assert slurm_resources(cfg, launcher=dict(NO_LAUNCHER_VALUES), gpus_available=_never_asked) == {
        "nodes": 1, "tasks_per_node": 2, "gpus_per_node": None, "cpus_per_task": 1}


def test_submission_error_is_one_line_with_sbatchs_reason_and_what_was_asked():
    exc = RuntimeError("sbatch: warning: something\nsbatch: error: Invalid generic resource (gres) specification\n")
    message = submission_error(exc, resources={"nodes": 1, "gpus_per_node": 2, "cpus_per_task": None})
    assert "\n" not in message
    assert "Invalid generic resource (gres) specification" in message and "nodes=1, gpus_per_node=2" in message
    assert "cpus_per_task=None" not in message


def test_launcher_values_reach_submitit_under_its_own_names():
    params = {"partition": "debug", "timeout_min": 10, "gpus_per_node": None, "mem_gb": 4,
              "max_num_timeout": 3, "signal_delay_s": 60, "additional_parameters": {"mail_type": "END"}}
    got = _executor_parameters(params)
    assert got["slurm_partition"] == "debug" and got["timeout_min"] == 10 and got["mem_gb"] == 4
    assert got["slurm_signal_delay_s"] == 60 and got["slurm_additional_parameters"] == {"mail_type": "END"}
    assert "max_num_timeout" not in got and "slurm_max_num_timeout" not in got
