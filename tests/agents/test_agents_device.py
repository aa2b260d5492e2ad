"""Every agent on its ``device``: ``auto`` (the CPU here) runs as ``cpu`` does, digit for digit,
and the networks, models, generators, planner candidates and batches an agent creates live on
``agent.device``. Where CUDA is available the same tests check the tensors on the GPU."""

import dataclasses
import json

import pytest
import torch

from forethought.agents import AGENTS
from forethought.agents.imagination import ModelBasedSAC, imagine
from forethought.agents.latent import LatentAgent
from forethought.agents.sac import SAC
from forethought.device import device_name, resolve_device
from forethought.experiments.run import make_env, start_run

from test_agent_contract import SMALL, metrics, small_config

CUDA = torch.cuda.is_available()


def placed(agent) -> dict[str, torch.device]:
    """The device of each tensor and generator worth checking, by name."""
    where: dict[str, torch.device] = {}

    def params(prefix, module):
        where.update({f"{prefix}.{name}": p.device for name, p in module.named_parameters()})

    sac = agent.sac if isinstance(agent, ModelBasedSAC) else agent if isinstance(agent, SAC) else None
    if sac is not None:
        params("actor", sac.actor), params("critic", sac.critic), params("critic_target", sac.critic_target)
        where.update({"log_alpha": sac.log_alpha.device, "sac.generator": sac.generator.device,
                      "action_center": sac.action_center.device})
        batch = sac.buffer.sample(8, sac.generator)
        where["policy"] = sac.policy(batch.obs.to(sac.device)).device
    if isinstance(agent, ModelBasedSAC):
        params("model", agent.model.network)
        where.update({"model.generator": agent.generator.device, "task.generator": agent.task_generator.device})
        start = agent.sac.buffer.sample(8, agent.generator).obs
        imagined = imagine(agent.model, agent.task, agent._policy, start, 2, agent.generator)
        where.update({f"imagined.{f.name}": getattr(imagined, f.name).device for f in dataclasses.fields(imagined)})
    if hasattr(agent, "planner_generator"):
        where["planner_generator"] = agent.planner_generator.device
    if agent.name == "pets":
        params("model", agent.model.network)
        where.update({"generator": agent.generator.device, "task_generator": agent.task_generator.device,
                      "normaliser": agent.model.obs_norm.mean.device,
                      "candidates.generator": agent.agent.optimizer.generator.device,
                      "candidates.bounds": agent.agent.optimizer.bounds.low.device,
                      "candidates.scores": agent.agent.last_evaluation.score.device})
    if isinstance(agent, LatentAgent):
        params("world_model", agent.model)
        where.update({"generator": agent.generator.device, "world_model.generator": agent.model.generator.device})
        batch = agent.buffer.sample(2, 4, agent.generator)
        _, states = agent.model.train_step(batch)
        where["posterior"] = states.deter.device
    if agent.name == "planet":
        where.update({"plan_generator": agent.plan_generator.device,
                      "candidates.bounds": agent.optimizer.bounds.low.device})
    if agent.name == "dreamer":
        params("actor", agent.behaviour.actor), params("critic", agent.behaviour.critic)
        where.update({"imagine_generator": agent.behaviour.imagine_generator.device,
                      "return_scale": agent.behaviour.return_scale.device})
    if agent.name == "muzero":
        params("net", agent.net)
        latent, _, value = agent.net.initial_inference(torch.zeros(1, agent.obs_dim, device=agent.device))
        where.update({"latent": latent.device, "value": value.device,
                      **{f"adam.{i}": state["exp_avg"].device for i, state in enumerate(agent.optimizer.state.values())}})
    return where


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_tensors_an_agent_creates_live_on_its_device(tmp_path, algo):
    config = small_config(algo, tmp_path)
    env = make_env(algo, config)
    agent = AGENTS[algo](env, config.agent, seed=3, device="auto")
    assert agent.device == resolve_device("auto")
    agent.learn(**({"steps": 230} if config.steps is not None and algo not in ("planet", "dreamer") else
                   {"episodes": 2}))
    obs, _ = env.reset(seed=1)
    agent.reset()
    assert env.action_space.contains(agent.act(obs))  # actions come back as the env's NumPy arrays
    where = placed(agent)
    assert len(where) >= 5
    assert {name: device for name, device in where.items() if device != agent.device} == {}
    agent.save(tmp_path / "saved")
    loaded = AGENTS[algo].load(tmp_path / "saved", make_env(algo, config), device="auto")
    assert loaded.device == agent.device
    loaded.reset()
    assert env.action_space.contains(loaded.act(obs))
    assert {name: device for name, device in placed(loaded).items() if device != agent.device} == {}


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_a_run_on_auto_gives_the_numbers_of_a_run_on_cpu_here(tmp_path, algo):
    config = small_config(algo, tmp_path)
    start_run(algo, dataclasses.replace(config, out=str(tmp_path / "cpu")))
    start_run(algo, dataclasses.replace(config, out=str(tmp_path / "auto"), device="auto"))
    info = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert info["device"] == device_name(resolve_device("auto"))
    assert json.loads((tmp_path / "cpu" / "run.json").read_text())["device"] == "cpu"
    if not CUDA:  # auto is the CPU here, and the CPU is bit-reproducible
        assert metrics(tmp_path / "auto") == metrics(tmp_path / "cpu")
