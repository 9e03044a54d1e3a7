"""A small RL loop against the run's inference graph (examples/rl/run.yaml).

Each step draws rollouts from the frontend through the `openai` client, scores them, and
takes a REINFORCE step with CPU torch on a tiny policy: a softmax over prompt templates,
pushed towards the templates whose completions score higher. The frontend's address comes
from OPENAI_BASE_URL, which the run sets (locally and in the Ray containers alike).

Exit codes: 0 when every step ran, 1 when the frontend served no rollout.
"""

from __future__ import annotations

import argparse
import os
import sys

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=4, help="completions per step")
    parser.add_argument("--max-tokens", type=int, default=12)
    args = parser.parse_args()
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
    for step in range(args.steps):
        dist = torch.distributions.Categorical(logits=logits)
        choices = dist.sample((args.rollouts,))
        rewards = []
        for choice in choices.tolist():
            reply = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": PROMPTS[choice]}],
                max_tokens=args.max_tokens,
            )
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
    best = PROMPTS[int(torch.argmax(logits))]
    print(f"done: {args.steps} steps; the policy now prefers {best!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
