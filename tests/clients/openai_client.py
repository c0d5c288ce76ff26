"""The official `openai` Python package, unchanged, against ragstream's /v1.

Run by tests/clients.rs, which scripts the upstream for each question in turn:
direct streamed, knowledge-base streamed, direct, knowledge-base.
"""
import os
import sys

import openai

URL = os.environ.get("RAGSTREAM_URL")
if not URL:
    sys.exit("RAGSTREAM_URL is not set: run this through `cargo test --test clients`")
client = openai.OpenAI(base_url=f"{URL}/v1", api_key="unused", max_retries=0)

assert [m.id for m in client.models.list()] == ["ragstream"]


def streamed(question):
    stream = client.chat.completions.create(
        model="ragstream",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": question}],
    )
    text, finish, usage, sources = "", None, None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        extra = (chunk.model_extra or {}).get("ragstream")
        if extra:
            sources += extra["sources"]
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        assert choice.delta.tool_calls is None
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
    return text, finish, usage, sources


print("- a direct question, streamed")
text, finish, usage, _ = streamed("你好")
assert text == "你好！有什么可以帮你？", text
assert finish == "stop", finish
assert usage.total_tokens == 15, usage

print("- a knowledge-base question, streamed")
text, finish, _, sources = streamed("我家孩子总是打自己的头，怎么办？")
assert text == "先保证安全。[1]", text
assert sources[0]["id"] == "self-injury", sources

print("- a direct question")
completion = client.chat.completions.create(
    model="ragstream", messages=[{"role": "user", "content": "你好"}]
)
assert completion.choices[0].message.content == "你好！有什么可以帮你？"
assert completion.choices[0].finish_reason == "stop"

print("- a knowledge-base question")
completion = client.chat.completions.create(
    model="ragstream",
    messages=[{"role": "user", "content": "我家孩子总是打自己的头，怎么办？"}],
)
assert completion.choices[0].message.content == "先保证安全。[1]"
assert completion.model_extra["ragstream"]["sources"][0]["id"] == "self-injury"

print("- another model is not found")
try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    raise AssertionError("expected a 404")
except openai.NotFoundError as err:
    assert err.code == "model_not_found", err
print("ok")
