"""Chinese and English labels, and how figures are shown: amounts with thousands separators
and two decimals (Decimal, never float), dates and times in Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from shared.business_time import SHANGHAI  # noqa: F401 - the portal's dates

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

LABELS: dict[str, tuple[str, str]] = {
    "portal": ("清算门户", "Clearing portal"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "login_name": ("登录名（经办机构编码或 auditor）", "Login (agency code or auditor)"),
    "password": ("密码", "Password"),
    "login_failed": ("登录名或密码错误", "Wrong login or password"),
    "home": ("首页", "Home"),
    "agency": ("经办机构", "Agency"),
    "auditor": ("审计", "Auditor"),
    "business_day": ("业务日", "Business day"),
    "current_cycle": ("当前清算周期", "Current cycle"),
    "deadlines": ("近期时间节点", "Next deadlines"),
    "date": ("日期", "Date"),
    "step": ("事项", "Step"),
    "due_from_you": ("本机构待办", "Still due from this agency"),
    "nothing_due": ("无", "nothing"),
    "open_disputes": ("未结争议", "Open disputes"),
    "overdue": ("逾期未拨付", "Overdue remittances"),
    "rejected_submissions": ("被清算服务退回的提交", "Answers the clearing service refused"),
    "none": ("无", "none"),
    "revolving_fund": ("周转金余额", "Revolving-fund balance"),
    "no_revolving_fund": ("本系统未记录周转金", "no revolving fund is kept by this system"),
    "statements": ("月度清算单", "Statements"),
    "statement": ("清算单", "Statement"),
    "cycle": ("周期", "Cycle"),
    "counterpart": ("对方机构", "Counterpart"),
    "receivable": ("应收", "Receivable"),
    "payable": ("应付", "Payable"),
    "adjustments": ("调整", "Adjustments"),
    "net": ("净额", "Net"),
    "count": ("笔数", "Count"),
    "total": ("合计", "Total"),
    "answer": ("确认状态", "Answer"),
    "unanswered": ("待确认", "awaiting answer"),
    "confirmed": ("已确认", "confirmed"),
    "disputed": ("有争议", "disputed"),
    "deemed_confirmed": ("视同确认", "deemed confirmed"),
    "confirm": ("确认", "Confirm"),
    "dispute": ("提出争议", "Dispute"),
    "dispute_selected": ("对所选结算提出争议", "Dispute the ticked settlements"),
    "settlement_ids": ("有争议的结算单号（逗号分隔）", "Disputed settlement ids (comma separated)"),
    "reason": ("原因", "Reason"),
    "published": ("已发送至清算服务", "Sent to the clearing service"),
    "daily_reports": ("日对账", "Daily reports"),
    "settlements": ("结算笔数", "Settlements"),
    "checksum": ("校验和", "Checksum"),
    "instructions": ("净额划拨指令", "Net-transfer instructions"),
    "instruction": ("指令", "Instruction"),
    "payer": ("付款方", "Payer"),
    "payee": ("收款方", "Payee"),
    "amount": ("金额", "Amount"),
    "due_on": ("到期日", "Due on"),
    "paid": ("已拨付", "Paid"),
    "outstanding": ("未拨付", "Outstanding"),
    "report_remittance": ("报告拨付", "Report remittance"),
    "paid_at": ("拨付时间", "Paid at"),
    "notices": ("差额通知", "Difference notices"),
    "original": ("原结算单", "Original settlement"),
    "resettlement": ("重新结算单", "Re-settlement"),
    "carried_into": ("并入周期", "Carried into"),
    "fund_pay": ("统筹基金支付", "Fund pays"),
    "account_pay": ("个人账户支付", "Account pays"),
    "cash_pay": ("个人现金支付", "Cash pays"),
    "cleared_amount": ("清算金额", "Cleared amount"),
    "items": ("明细", "Items"),
    "drill_down": ("明细", "Details"),
    "search": ("按结算单号或人员编号查找", "Search by settlement id or person id"),
    "search_button": ("查找", "Search"),
    "kind": ("类型", "Kind"),
    "settlement": ("结算", "Settlement"),
    "refund": ("退费", "Refund"),
    "hospital": ("医疗机构", "Hospital"),
    "business_time": ("业务时间", "Business time"),
    "origin_cycle": ("原周期", "Origin cycle"),
    "counts_as": ("计入", "Counts as"),
    "effect": ("对净额影响", "Effect on net"),
    "cause": ("来源事件", "Cause"),
    "insured_agency": ("参保地", "Insured agency"),
    "care_agency": ("就医地", "Care agency"),
    "adds_up": ("与清算单一致", "adds up with the statement"),
    "does_not_add_up": ("与清算单不一致", "DOES NOT add up with the statement"),
    "page": ("页", "Page"),
    "previous": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "charts": ("图表", "Charts"),
    "nets_over_cycles": ("各周期净额", "Net positions over cycles"),
    "flows": ("本周期资金流向", "Flows of the cycle"),
    "daily_volumes": ("每日结算量", "Daily volumes"),
    "audit": ("审计视图", "Auditor's view"),
    "ledger_check": ("账簿校验", "Ledger check"),
    "check_now": ("立即重新校验", "check again now"),
    "ok": ("通过", "ok"),
    "failed": ("未通过", "FAILED"),
    "violations": ("违规数", "Violations"),
    "last_replay": ("最近一次审计重放", "Last audit replay"),
    "no_replay": ("尚无记录（clearinghouse audit replay）",
                  "none recorded (clearinghouse audit replay)"),
    "other_database": ("非本门户所连数据库", "not this portal's database"),
    "postings": ("分录数", "Postings"),
    "forbidden": ("无权查看其他机构的数据", "You may not see another agency's data"),
    "not_found": ("未找到", "Not found"),
    "statements_day": ("下发清算单", "statements issued"),
    "confirmation_day": ("确认清算单截止", "statements to be confirmed"),
    "instructions_day": ("下发净额", "net amounts issued"),
    "remittance_day": ("净付款方拨付至省中心", "net payers remit to the hub"),
    "distribution_day": ("省中心拨付净收款方", "the hub pays net receivers"),
    "confirm_statement": ("确认 {cycle} 清算单", "confirm the {cycle} statement"),
    "remit": ("拨付 {amount}（{instruction}）", "remit {amount} ({instruction})"),
    "receive": ("应收到 {amount}", "to receive {amount}"),
    "confirm_reports": ("确认 {n} 份日对账", "answer {n} daily report(s)"),
    "language": ("English", "中文"),
}


def label(key: str, language: str) -> str:
    zh, en = LABELS.get(key, (key, key))
    return en if language == "en" else zh


def money(value: Decimal | str | None) -> str:
    """``1234567.5`` → ``1,234,567.50``; Decimal all the way."""
    if value is None or value == "":
        return ""
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return f"{amount:,.2f}"


def shanghai(value: datetime | date | str | None) -> str:
    """A time as Asia/Shanghai ``YYYY-MM-DD HH:MM``; a date as ``YYYY-MM-DD``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()
