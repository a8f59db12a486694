"""Tooling: the generated CRDs and the API reference (`backlogctl crds`), and `shape`, the
function-length check of `make lint`.

`backlog_operator.api` holds only the types; what turns them into `crds/` and
`docs/reference.md` (`make crds`) lives here, out of the operator's and the worker's way.
"""
