"""Exceptions that carry their HTTP status and a Japanese message for the user."""
from __future__ import annotations


class KBError(Exception):
    """Base of every error kb reports to a user."""

    status = 500
    code = "internal_error"
    hint = ""

    def __init__(self, message: str = "", *, hint: str = ""):
        super().__init__(message or self.__class__.__doc__ or "")
        self.message = message or (self.__class__.__doc__ or "").strip()
        if hint:
            self.hint = hint


class BadQuery(KBError):
    """検索語が正しくありません。"""

    status = 400
    code = "bad_query"


class BadRequest(KBError):
    """リクエストが正しくありません。"""

    status = 400
    code = "bad_request"


class BadArticle(KBError):
    """記事の形式が正しくありません。"""

    status = 400
    code = "bad_article"


class ArticleNotFound(KBError):
    """指定された記事が見つかりません。"""

    status = 404
    code = "not_found"


class IndexMissing(KBError):
    """索引がありません。"""

    status = 503
    code = "index_missing"
    hint = "run `kb index corpus/` (or `make run`) to build it"


class IndexIncompatible(KBError):
    """索引の形式が古いため開けません。"""

    status = 503
    code = "index_incompatible"
    hint = "rebuild it: `kb index corpus/ --index DIR`"


class TooLarge(KBError):
    """送信された文章が長すぎます。"""

    status = 413
    code = "too_large"


class Unauthorized(KBError):
    """認証が必要です。正しいトークンを指定してください。"""

    status = 401
    code = "unauthorized"


class Forbidden(KBError):
    """この操作は許可されていません。"""

    status = 403
    code = "forbidden"


class Conflict(KBError):
    """現在の状態と矛盾するため実行できません。"""

    status = 409
    code = "conflict"


class UnsupportedMediaType(KBError):
    """送信されたデータの形式に対応していません。"""

    status = 415
    code = "unsupported_media_type"


class Busy(KBError):
    """他の書き込みが実行中です。しばらくしてから再度お試しください。"""

    status = 503
    code = "busy"

    def __init__(self, message: str = "", *, hint: str = "", retry_after: int = 1):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
