"""Messages of the checks and the grader in English and Japanese (``--lang``)."""
from __future__ import annotations

LANG = {"current": "en"}

MESSAGES = {
    "expected_ndarray": ("{name}: expected a numpy.ndarray, got {got}",
                         "{name}：numpy.ndarray を返すはずが {got} でした"),
    "expected_tensor": ("{name}: expected a torch.Tensor, got {got}",
                        "{name}：torch.Tensor を返すはずが {got} でした"),
    "expected_array_shape": ("{name}: expected an array of shape {shape}, got {got}",
                             "{name}：形状 {shape} の配列を返すはずが {got} でした"),
    "shape": ("{name}: expected shape {want}, got {got}", "{name}：形状は {want} のはずが {got} でした"),
    "expected_array_dtype": ("{name}: expected an array of dtype {dtype}, got {got}",
                             "{name}：dtype {dtype} の配列を返すはずが {got} でした"),
    "dtype": ("{name}: expected dtype {want}, got {got} (float in, same float dtype out)",
              "{name}：dtype は {want} のはずが {got} でした（入力と同じ浮動小数点型を返してください）"),
    "not_finite": ("{name}: {n} value(s) are NaN or infinite, first at index {idx}",
                   "{name}：{n} 個の値が NaN または無限大です（最初はインデックス {idx}）"),
    "device": ("{name}: expected a tensor on {want}, got one on {got}",
               "{name}：テンソルは {want} 上にあるはずが {got} 上にありました"),
    "close": ("{name}: {bad} of {total} values differ; largest difference {worst} at index {idx} "
              "(got {got}, expected {want}); tolerance atol={atol:g} rtol={rtol:g}",
              "{name}：{total} 個中 {bad} 個の値が異なります。最大の差 {worst}（インデックス {idx}、"
              "得られた値 {got}、期待値 {want}）。許容誤差 atol={atol:g} rtol={rtol:g}"),
    "equal_array": ("{name}: {bad} values differ, first at index {idx} (got {got}, expected {want})",
                    "{name}：{bad} 個の値が異なります。最初はインデックス {idx}（得られた値 {got}、期待値 {want}）"),
    "equal": ("{name}: expected {want}, got {got}", "{name}：期待値は {want} ですが {got} でした"),
    "mutated": ("{name} were modified in place (argument {args}); this function must not change its inputs",
                "{name} がその場で書き換えられました（引数 {args}）。この関数は入力を変更してはいけません"),
    "not_started": ("not implemented yet (the stub raises NotImplementedError)",
                    "未実装です（スタブが NotImplementedError を送出しています）"),
    "needs_other": ("this exercise uses your {other}, which is not finished yet (it raises NotImplementedError): "
                    "finish that exercise first",
                    "この課題はあなたの {other} を使いますが、まだ未完成です（NotImplementedError）。先にそちらを仕上げましょう"),
    "raised": ("your code raised {what}", "あなたのコードが例外を送出しました：{what}"),
    "memory": ("your code ran out of memory (the sandbox's limit): {what}",
               "メモリ不足です（サンドボックスの上限）：{what}"),
    "last_call": ("The last call into your code before the failure (paste it into Python in your exercises/ folder):",
                  "失敗の直前にあなたのコードを呼び出した内容（exercises/ フォルダで Python に貼り付けて再現できます）："),
    "dead": ("{detail} The exercise scores 0.",
             "学生のコードを動かすプロセスが止まりました（{kind}）。この課題は 0 点です。詳細：{detail}"),
    "kind_timeout": ("timeout", "時間切れ"), "kind_crash": ("crash", "クラッシュ"),
    "kind_memory": ("memory limit", "メモリ上限"), "kind_protocol": ("broken reply", "不正な応答"),
    "kind_start": ("did not start", "起動失敗"),
    "import_failed": ("could not import {name}.py: {what}", "{name}.py を import できませんでした：{what}"),
    "all_need_reference": ("every check of this exercise needs the instructor's reference",
                           "この課題のチェックはすべて講師の模範解答を必要とします"),
    "no_tests": ("no tests were collected for this exercise", "この課題のテストが 1 件も見つかりませんでした"),
    "all_not_started": ("not started: every function still raises NotImplementedError",
                        "未着手：どの関数もまだ NotImplementedError を送出しています"),
    "reproduce": ("Inputs that reproduce it (hypothesis' smallest example):",
                  "再現する入力（hypothesis が見つけた最小の例）："),
}


def set_lang(lang: str) -> None:
    LANG["current"] = "ja" if lang == "ja" else "en"


def say(key: str, **kwargs) -> str:
    en, ja = MESSAGES[key]
    return (ja if LANG["current"] == "ja" else en).format(**kwargs)


def msg(en: str, ja: str) -> str:
    """A suite's own message in the grading language: ``msg("output", "出力")``."""
    return ja if LANG["current"] == "ja" else en
