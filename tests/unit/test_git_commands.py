"""git argv builders: exact lists, paths after ``--`` so a file name can never be an option."""

from __future__ import annotations

from deploytools.commands import git


def test_ls_files_errors_on_an_untracked_path() -> None:
    assert git.ls_files("config/prod.env") == [
        "git", "ls-files", "--error-unmatch", "--", "config/prod.env",
    ]  # fmt: skip


def test_check_ignore_is_quiet_and_takes_the_path_after_double_dash() -> None:
    assert git.check_ignore("-rf") == ["git", "check-ignore", "--quiet", "--", "-rf"]


def test_rev_parse_verifies_a_commit() -> None:
    assert git.rev_parse("v1.2") == ["git", "rev-parse", "--verify", "v1.2^{commit}"]
    assert git.rev_parse(short=True) == ["git", "rev-parse", "--short", "--verify", "HEAD^{commit}"]


def test_status_check_ref_format_tag_and_worktrees() -> None:
    assert git.status_porcelain() == ["git", "status", "--porcelain", "--untracked-files=no"]
    assert git.check_ref_format("v1") == ["git", "check-ref-format", "refs/tags/v1"]
    assert git.tag("v1", "abc123") == [
        "git", "tag", "v1", "abc123",
    ]  # fmt: skip
    assert git.worktree_add("/tmp/wt", "v1") == [
        "git", "worktree", "add", "--detach", "--force", "/tmp/wt", "v1",
    ]  # fmt: skip
    assert git.worktree_remove("/tmp/wt") == ["git", "worktree", "remove", "--force", "/tmp/wt"]
    assert git.toplevel() == ["git", "rev-parse", "--show-toplevel"]


def test_a_commit_is_looked_for_and_a_file_of_it_read_without_a_checkout() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert git.has_commit(sha) == ["git", "cat-file", "-e", f"{sha}^{{commit}}"]
    assert git.show_file(sha, "config/deploy.toml") == [
        "git", "show", f"{sha}:./config/deploy.toml",
    ]  # fmt: skip


def test_a_release_is_archived_from_a_tree_a_scratch_index_can_make() -> None:
    assert git.archive("HEAD", "/tmp/x/code.tar") == [
        "git", "archive", "--format=tar", "--output=/tmp/x/code.tar", "HEAD",
    ]  # fmt: skip
    assert git.read_tree("HEAD") == ["git", "read-tree", "HEAD"]
    assert git.add_tracked() == ["git", "add", "--update", "--", ":/"]
    assert git.write_tree() == ["git", "write-tree"]
