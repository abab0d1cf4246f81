"""`lifelong serve`: one continually-learning model behind an HTTP service (docs/serve.md).

- `config`   the learner's options (`ServeConfig`), kept in the state folder so that a restart resumes it
- `log`      the write-ahead log: every accepted batch, in SQLite (WAL mode), committed before the answer
- `inputs`   the checks of a request's arrays (shapes, dtypes, NaN/inf, labels), each a one-line reason
- `learner`  the learner: consumes the log in order in one worker, checkpoints, replays the log on restart
- `app`      the FastAPI app (tokens, limits, /learn /predict /status /metrics /health) and its start

Importing this package, `config`, `log` or `inputs` imports neither PyTorch nor FastAPI (`lifelong --help`
stays fast); `learner` needs PyTorch, `app` also the optional extra `serve` (fastapi, uvicorn, httpx).
"""
