"""A small RL loop against the run's inference graph (examples/rl/run.yaml).

Each step draws rollouts from the frontend through the `openai` client, scores them, and
takes a REINFORCE step with CPU torch on a tiny policy: a softmax over prompt templates,
pushed towards the templates whose completions score higher. The frontend's address comes
from OPENAI_BASE_URL, which the run sets (locally and in the Ray containers alike).

After each step the new weights go to the whole inference fleet in one transaction: the
policy is saved as a checkpoint and `POST /v1/rl/update_weights` (the RL API, docs/rl.md, at
DRIVETRAIN_ADMIN_URL with the run's DRIVETRAIN_ADMIN_TOKEN) commits it as version
`step-<n>`; every rollout of the next step must report that version
(`x-drivetrain-weight-version`). The mocker workers of this example only record the version.

Exit codes: 0 when every step ran, 1 when the frontend served no rollout, 2 when an update
failed or a rollout came from another version.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx
import torch
from openai import OpenAI

PROMPTS = [
    "Say something short.",
    "Write one vivid sentence about the sea.",
    "List three colours.",
    "Describe a quiet morning in a few words.",
]


def score(text: str) -> float:
    """The reward: the share of distinct characters among the letters of the completion."""
    letters = [c.lower() for c in text if c.isalpha()]
    return len(set(letters)) / len(letters) if letters else 0.0


def update_weights(model: str, version: str, checkpoint: Path) -> dict:
    """Commit ``version`` on every worker of ``model`` (or on none: the answer says why)."""
    admin = os.environ["DRIVETRAIN_ADMIN_URL"]
    token = os.environ["DRIVETRAIN_ADMIN_TOKEN"]
    reply = httpx.post(
        f"{admin}/v1/rl/update_weights",
        json={"model": model, "version": version, "source": {"path": str(checkpoint)}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    answer = reply.json()
    if reply.status_code != 200:
        raise RuntimeError(f"update to {version} failed: {answer.get('error', answer)}")
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=4, help="completions per step")
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--checkpoints", default="checkpoints", help="folder for the weights")
    args = parser.parse_args()
    updates = bool(
        os.environ.get("DRIVETRAIN_ADMIN_URL") and os.environ.get("DRIVETRAIN_ADMIN_TOKEN")
    )
    torch.manual_seed(int(os.environ.get("RL_SEED", "0")))

    client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "unused"))  # OPENAI_BASE_URL
    models = [m.id for m in client.models.list().data]
    if not models:
        print(f"no model served at {client.base_url}", file=sys.stderr)
        return 1
    model = models[0]
    print(f"training against {model} at {client.base_url}")

    logits = torch.zeros(len(PROMPTS), requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=0.5)
    baseline = 0.0
    expected: str | None = None  # the version the last update committed
    for step in range(args.steps):
        dist = torch.distributions.Categorical(logits=logits)
        choices = dist.sample((args.rollouts,))
        rewards = []
        for choice in choices.tolist():
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=[{"role": "user", "content": PROMPTS[choice]}],
                max_tokens=args.max_tokens,
            )
            version = raw.headers.get("x-drivetrain-weight-version")
            if expected is not None and version != expected:
                print(f"a rollout came from version {version}, not {expected}", file=sys.stderr)
                return 2
            reply = raw.parse()
            rewards.append(score(reply.choices[0].message.content or ""))
        reward = torch.tensor(rewards)
        advantage = reward - baseline
        loss = -(dist.log_prob(choices) * advantage).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        baseline = 0.9 * baseline + 0.1 * float(reward.mean())
        print(
            f"step {step}: {len(rewards)} rollouts, mean reward {reward.mean():.3f}, "
            f"loss {loss.item():+.4f}"
        )
        if updates:
            expected = f"step-{step + 1}"
            checkpoint = Path(args.checkpoints) / f"{expected}.pt"
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"logits": logits.detach()}, checkpoint)
            try:
                answer = update_weights(model, expected, checkpoint)
            except (RuntimeError, httpx.HTTPError) as exc:
                print(exc, file=sys.stderr)
                return 2
            print(
                f"  weights {expected} committed on {len(answer['instances'])} workers "
                f"in {answer['seconds']:.3f} s"
            )
    best = PROMPTS[int(torch.argmax(logits))]
    print(f"done: {args.steps} steps; the policy now prefers {best!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
