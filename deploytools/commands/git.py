"""git argv builders. Ref names are checked by ``git check-ref-format`` before use."""

from __future__ import annotations

Argv = list[str]


def rev_parse(ref: str = "HEAD", *, short: bool = False) -> Argv:
    return ["git", "rev-parse", *(["--short"] if short else []), "--verify", f"{ref}^{{commit}}"]


def status_porcelain() -> Argv:
    return ["git", "status", "--porcelain", "--untracked-files=no"]


def ls_files(path: str) -> Argv:
    return ["git", "ls-files", "--error-unmatch", "--", path]


def check_ref_format(tag: str) -> Argv:
    return ["git", "check-ref-format", f"refs/tags/{tag}"]


def tag(name: str, sha: str) -> Argv:
    """A lightweight tag: needs no committer identity on the deploying machine."""
    return ["git", "tag", name, sha]


def tags(pattern: str) -> Argv:
    return ["git", "tag", "--list", pattern]


def tag_exists(name: str) -> Argv:
    return ["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{name}"]


def worktree_add(path: str, ref: str) -> Argv:
    return ["git", "worktree", "add", "--detach", "--force", path, ref]


def worktree_remove(path: str) -> Argv:
    return ["git", "worktree", "remove", "--force", path]


def toplevel() -> Argv:
    return ["git", "rev-parse", "--show-toplevel"]


def check_ignore(path: str) -> Argv:
    """Exit 0 if ``path`` is ignored by git, 1 if it is not."""
    return ["git", "check-ignore", "--quiet", "--", path]


def has_commit(sha: str) -> Argv:
    """Exit 0 if the commit is in the repository (a shallow clone or a prune may lack it)."""
    return ["git", "cat-file", "-e", f"{sha}^{{commit}}"]


def show_file(sha: str, path: str) -> Argv:
    """A file as it is in commit ``sha``, ``path`` relative to the working directory; the
    working tree is not touched."""
    return ["git", "show", f"{sha}:./{path}"]


def archive(tree: str, output: str) -> Argv:
    """The tracked files of ``tree`` (a commit or a tree id) as a tar file at ``output``.

    Run in a subdirectory of the repository, only that subdirectory is archived, with paths
    relative to it; files marked ``export-ignore`` in ``.gitattributes`` are left out.
    """
    return ["git", "archive", "--format=tar", f"--output={output}", tree]


def read_tree(ref: str) -> Argv:
    """Load ``ref``'s tree into the index named by ``GIT_INDEX_FILE`` (a scratch one)."""
    return ["git", "read-tree", ref]


def add_tracked() -> Argv:
    """Stage the working tree's version of every tracked file (deletions included), nothing
    untracked; with ``GIT_INDEX_FILE`` set, into that scratch index only."""
    return ["git", "add", "--update", "--", ":/"]


def write_tree() -> Argv:
    """The index as a tree object; prints its id. Moves no ref."""
    return ["git", "write-tree"]
