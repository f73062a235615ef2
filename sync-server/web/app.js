/* app.js - the supervisors' dashboard: one page on the JSON API of
 * docs/DASHBOARD.md.  No framework and nothing loaded from outside: DOM
 * built by h()/s(), charts drawn as SVG by the small functions below.
 *
 * Every figure element carries data-testid and data-value (the raw number
 * from the API: counts, or money in integer fen) so tests read the values
 * without parsing formatted text.  Nothing is written into the page as
 * HTML except the QR code, which is parsed as SVG and stripped of anything
 * active first. */
'use strict';
(function () {

/* ---- language ------------------------------------------------------- */

const I18N = {
  zh: {
    app: '居家养老服务监管平台', bureau: '县民政局', login: '登录', logout: '退出登录',
    name: '账号', password: '密码', login_failed: '账号或密码不正确。', rate_limited: '尝试次数过多，请稍后再试。',
    login_hint: '仅限民政工作人员使用', loading: '正在加载…', retry: '重试',
    overview: '总览', meals: '助餐', retrofits: '适老化改造', visits: '走访慰问', devices: '设备',
    conflicts: '冲突审核', report: '统计报表',
    overview_t: '本月总览', meals_t: '老年助餐', retrofits_t: '居家适老化改造', visits_t: '走访慰问',
    devices_t: '设备管理', conflicts_t: '冲突审核', report_t: '统计报表',
    month: '月份', year: '年度', township: '乡镇', all_townships: '全县', campaign: '活动',
    county_admin: '县级管理员', county_supervisor: '县级督导员', township_supervisor: '乡镇督导员',
    this_month: '本月', last_month: '上月', vs_last: '较上月', no_change: '持平', none: '暂无数据',
    f_meals: '助餐人次', f_subsidy_fen: '助餐补贴', f_visits: '走访次数', f_cash_fen: '慰问金',
    f_goods_value_fen: '慰问物资价值', f_retrofits_accepted: '改造验收户数',
    attention: '需要关注', all_clear: '目前没有需要处理的事项。',
    a_open_conflicts: '待审核的数据冲突', a_overdue_retrofits: '超期未推进的改造案件',
    a_unvisited_must_visit: '尚未走访的应访老人', a_stale_devices: '超过3天未同步的设备',
    a_duplicate_claims: '本月拦截的重复助餐申领',
    trend12: '近12个月助餐人次', last12: '近12个月', compare: '本月与上月对比',
    dine_in: '堂食', delivery: '送餐', paid_fen: '个人自付', subsidy: '补贴', meals_n: '人次',
    meals_by_day: '每日助餐人次', meals_by_hall: '各助餐点本月人次', hall_day: '各助餐点每日人次',
    halls: '助餐点', hall: '助餐点', date: '日期', period: '餐次', status: '状态', at: '时间',
    duplicates: '重复申领拦截记录', duplicates_hint: '同一老人同一餐次的第二次补贴申领，已在合并时拦截',
    breakfast: '早餐', lunch: '午餐', dinner: '晚餐', total: '合计',
    funnel: '改造进度漏斗', target: '年度目标', target_n: '年度目标 {n} 户', of_target: '占目标',
    applied: '已申请', assessed: '已评估', approved: '已审批', works: '施工中', accepted: '已验收', paid: '已拨付',
    by_township: '各乡镇案件（按当前状态）', overdue: '超期案件', overdue_hint: '在申请、评估或施工环节停留超过规定天数',
    case_id: '案件编号', since: '起始日期', days: '停留天数', costs: '改造资金',
    estimated_fen: '预估费用', approved_fen: '核定补助', final_fen: '决算金额', cases: '案件数',
    coverage: '应访老人覆盖率', visited: '已走访', must: '应访', not_visited: '未走访',
    by_category: '按类别', cov_township: '各乡镇覆盖情况', unvisited: '尚未走访的应访老人',
    handouts: '慰问发放', goods_count: '物资件数', kinds: '服务类别（本月）', visits_by_day: '每日走访',
    senior: '老人', village: '村（社区）', category: '类别',
    welfare: '走访慰问', cleaning: '助洁', bathing: '助浴',
    centenarian: '百岁老人', advanced_age: '高龄老人', advanced_age_poor: '高龄困难老人',
    extreme_poverty: '特困老人', concentrated_care: '集中供养', ordinary: '普通老人',
    device: '设备', role: '角色', scope: '范围', last_sync: '最近同步', enrolled_at: '注册时间',
    app_version: '应用版本', schema_version: '数据版本', clock_skew: '时钟偏差', open_conflicts: '待审冲突',
    revoke: '吊销', revoke_confirm: '确定吊销该设备？设备将无法再同步，并销毁本机密钥。', revoked: '已吊销',
    active: '正常', never: '从未', stale: '超过3天未同步',
    r_hall: '助餐点终端', r_caregiver: '护理员终端', r_inspector: '评估验收终端',
    issue_code: '发放设备注册码', issue: '生成注册码', code: '注册码', expires: '有效期至',
    code_hint: '在平板上输入注册码或扫描二维码完成注册。注册码只能使用一次。',
    device_list: '设备列表', n_devices: '共 {n} 台', revoked_ok: '设备已吊销。',
    open: '待审核', resolved: '已处理', no_conflicts: '没有待审核的冲突。', no_resolved: '还没有已处理的冲突。',
    k_lww: '同时修改', k_state_regression: '状态回退', k_duplicate_claim: '重复申领', k_insert_exists: '重复新增',
    k_not_found: '记录不存在', k_constraint: '违反约束', k_duplicate_person: '疑似重复登记',
    field: '字段', current: '当前值', dup_winner: '已计入的申领', dup_loser: '被拦截的申领', winner: '采用的版本', loser: '被覆盖的版本', your_choice: '处理结果',
    edit: '手工修改', keep: '保持当前值', apply: '按所选内容更新', accept_unsubsidised: '计入用餐、不予补贴',
    keep_dup: '驳回重复申领', resolve_note: '处理结果将作为一次服务器端修改，下次同步时送达相关平板。',
    resolved_ok: '冲突已处理，修改将在下次同步时送达平板。', from_device: '来自设备', row: '记录',
    resolution: '处理方式', t_seniors: '老人信息', t_meal_logs: '用餐记录', t_retrofit_cases: '改造案件',
    t_retrofit_items: '改造项目', t_visits: '走访记录', t_visit_handouts: '慰问发放',
    c_name: '姓名', c_phone: '联系电话', c_address: '住址', c_id_card: '身份证号', c_health_notes: '健康备注',
    c_category: '类别', c_status: '状态', c_notes: '备注', c_birth_year: '出生年份', c_gender: '性别',
    c_poverty_status: '困难类型', c_village_id: '所在村', c_subsidy_fen: '补贴', c_meal_period: '餐次',
    c_kind: '类别', c_visitor: '走访人', c_senior_id: '老人', c_hall_id: '助餐点', c_served_at: '登记时间', c_price_paid_fen: '个人支付', c_void_of: '作废记录', c_location: '地点', c_final_cost_fen: '决算金额',
    c_estimated_cost_fen: '预估费用', c_service_date: '服务日期', c_mode: '就餐方式',
    report_title: '{scope}居家养老服务工作统计表', report_sub: '统计期：{month}（本月）；{year}年（本年累计）',
    item: '项目', month_col: '本月', year_col: '本年累计', print: '打印', r_meals: '助餐服务人次',
    r_subsidy_fen: '助餐补贴发放金额', r_retrofits_completed: '适老化改造完成户数', r_retrofit_target: '年度改造目标户数',
    r_progress: '年度目标完成率', r_seniors_visited: '走访慰问老人数', r_cash_fen: '发放慰问金',
    r_goods_value_fen: '发放慰问物资价值', made_by: '填报单位：', made_at: '填报日期：', reviewer: '审核人：',
    report_notes: '注：数据来自各助餐点、护理员和评估员平板同步至县级平台的记录；金额单位为元，保留两位小数。',
    csv: 'CSV', csv_title: '下载 CSV 表格', refresh: '刷新',
    e_forbidden_scope: '无权查看其他乡镇的数据。', e_forbidden_role: '当前账号无权执行此操作。',
    e_no_session: '登录已过期，请重新登录。', e_not_found: '未找到。', e_already_resolved: '该冲突已被他人处理。',
    e_csrf: '请求校验失败，请刷新页面。', e_generic: '请求失败', e_network: '无法连接服务器。',
    yuan: '元', households: '户', people: '人', times: '次', pieces: '件', days_n: '天',
  },
  en: {
    app: 'Home-based Elderly Care Dashboard', bureau: 'County Civil Affairs Bureau', login: 'Sign in',
    logout: 'Sign out', name: 'Account', password: 'Password', login_failed: 'Wrong account or password.',
    rate_limited: 'Too many attempts. Please wait a moment.', login_hint: 'For civil-affairs staff only',
    loading: 'Loading…', retry: 'Retry',
    overview: 'Overview', meals: 'Dining halls', retrofits: 'Retrofits', visits: 'Visits', devices: 'Devices',
    conflicts: 'Conflicts', report: 'Report',
    overview_t: 'This month at a glance', meals_t: 'Dining halls', retrofits_t: 'Age-friendly home retrofits',
    visits_t: 'Welfare visits', devices_t: 'Devices', conflicts_t: 'Conflict review', report_t: 'Report',
    month: 'Month', year: 'Year', township: 'Township', all_townships: 'Whole county', campaign: 'Campaign',
    county_admin: 'County administrator', county_supervisor: 'County supervisor',
    township_supervisor: 'Township supervisor',
    this_month: 'This month', last_month: 'Last month', vs_last: 'vs last month', no_change: 'no change',
    none: 'No data yet',
    f_meals: 'Meals served', f_subsidy_fen: 'Meal subsidy', f_visits: 'Visits', f_cash_fen: 'Cash handed over',
    f_goods_value_fen: 'Goods handed over', f_retrofits_accepted: 'Retrofits accepted',
    attention: 'Needs attention', all_clear: 'Nothing needs attention right now.',
    a_open_conflicts: 'Conflicts awaiting review', a_overdue_retrofits: 'Overdue retrofit cases',
    a_unvisited_must_visit: 'Must-visit seniors not yet visited', a_stale_devices: 'Devices not synced for 3 days',
    a_duplicate_claims: 'Duplicate meal claims caught this month',
    trend12: 'Meals, last 12 months', last12: 'Last 12 months', compare: 'This month against last month',
    dine_in: 'Dine-in', delivery: 'Delivery', paid_fen: 'Paid by seniors', subsidy: 'Subsidy', meals_n: 'meals',
    meals_by_day: 'Meals per day', meals_by_hall: 'Meals per hall this month', hall_day: 'Meals per hall per day',
    halls: 'Dining halls', hall: 'Hall', date: 'Date', period: 'Meal', status: 'Status', at: 'Time',
    duplicates: 'Duplicate claims caught', duplicates_hint: 'A second subsidised claim for the same senior and meal, stopped at merge',
    breakfast: 'Breakfast', lunch: 'Lunch', dinner: 'Dinner', total: 'Total',
    funnel: 'Retrofit funnel', target: 'Annual target', target_n: 'Target {n} homes', of_target: 'of target',
    applied: 'Applied', assessed: 'Assessed', approved: 'Approved', works: 'Works', accepted: 'Accepted', paid: 'Paid',
    by_township: 'Cases by township (current status)', overdue: 'Overdue cases',
    overdue_hint: 'Stayed in applied, assessed or works longer than allowed',
    case_id: 'Case', since: 'Since', days: 'Days', costs: 'Costs', estimated_fen: 'Estimated',
    approved_fen: 'Approved subsidy', final_fen: 'Final cost', cases: 'Cases',
    coverage: 'Must-visit coverage', visited: 'Visited', must: 'Must visit', not_visited: 'Not visited',
    by_category: 'By category', cov_township: 'Coverage by township', unvisited: 'Must-visit seniors not yet visited',
    handouts: 'Cash and goods', goods_count: 'Goods (items)', kinds: 'Visits by kind (this month)',
    visits_by_day: 'Visits per day', senior: 'Senior', village: 'Village', category: 'Category',
    welfare: 'Welfare', cleaning: 'Cleaning', bathing: 'Bathing',
    centenarian: 'Centenarian', advanced_age: 'Advanced age', advanced_age_poor: 'Advanced age, poor',
    extreme_poverty: 'Extreme poverty', concentrated_care: 'Concentrated care', ordinary: 'Ordinary',
    device: 'Device', role: 'Role', scope: 'Scope', last_sync: 'Last sync', enrolled_at: 'Enrolled',
    app_version: 'App', schema_version: 'Schema', clock_skew: 'Clock skew', open_conflicts: 'Open conflicts',
    revoke: 'Revoke', revoke_confirm: 'Revoke this device? It can no longer sync and destroys its keys.',
    revoked: 'Revoked', active: 'Active', never: 'never', stale: 'No sync for 3 days',
    r_hall: 'Dining hall', r_caregiver: 'Caregiver', r_inspector: 'Inspector',
    issue_code: 'Enroll a device', issue: 'Issue code', code: 'Code', expires: 'Expires',
    code_hint: 'Type the code on the tablet or scan the QR code. Each code works once.',
    device_list: 'Devices', n_devices: '{n} devices', revoked_ok: 'The device was revoked.',
    open: 'Open', resolved: 'Resolved', no_conflicts: 'No conflicts await review.', no_resolved: 'No resolved conflicts yet.',
    k_lww: 'Concurrent edit', k_state_regression: 'Status step back', k_duplicate_claim: 'Duplicate claim',
    k_insert_exists: 'Inserted twice', k_not_found: 'Row not found', k_constraint: 'Constraint',
    k_duplicate_person: 'Possible duplicate person',
    field: 'Field', current: 'Current', dup_winner: 'Claim counted', dup_loser: 'Claim stopped', winner: 'Kept version', loser: 'Overwritten version', your_choice: 'Result',
    edit: 'Edit', keep: 'Keep current', apply: 'Apply selection', accept_unsubsidised: 'Count meal, no subsidy',
    keep_dup: 'Reject duplicate', resolve_note: 'The result is applied as a server-side change and reaches the tablets at their next sync.',
    resolved_ok: 'Resolved. The change reaches the tablets at their next sync.', from_device: 'From device', row: 'Row',
    resolution: 'Resolution', t_seniors: 'Seniors', t_meal_logs: 'Meal logs', t_retrofit_cases: 'Retrofit cases',
    t_retrofit_items: 'Retrofit items', t_visits: 'Visits', t_visit_handouts: 'Handouts',
    c_name: 'Name', c_phone: 'Phone', c_address: 'Address', c_id_card: 'ID card', c_health_notes: 'Health notes',
    c_category: 'Category', c_status: 'Status', c_notes: 'Notes', c_birth_year: 'Birth year', c_gender: 'Gender',
    c_poverty_status: 'Poverty status', c_village_id: 'Village', c_subsidy_fen: 'Subsidy', c_meal_period: 'Meal',
    c_kind: 'Kind', c_visitor: 'Visitor', c_senior_id: 'Senior', c_hall_id: 'Hall', c_served_at: 'Logged at', c_price_paid_fen: 'Paid by senior', c_void_of: 'Voids', c_location: 'Location', c_final_cost_fen: 'Final cost',
    c_estimated_cost_fen: 'Estimated cost', c_service_date: 'Service date', c_mode: 'Mode',
    report_title: '{scope} home-based elderly care: figures', report_sub: 'Month {month}, and year to date ({year})',
    item: 'Item', month_col: 'This month', year_col: 'Year to date', print: 'Print', r_meals: 'Meals served',
    r_subsidy_fen: 'Meal subsidy paid', r_retrofits_completed: 'Retrofits completed',
    r_retrofit_target: 'Annual retrofit target', r_progress: 'Share of annual target',
    r_seniors_visited: 'Seniors visited', r_cash_fen: 'Cash handed over', r_goods_value_fen: 'Goods handed over',
    made_by: 'Prepared by: ', made_at: 'Date: ', reviewer: 'Reviewed by: ',
    report_notes: 'Figures come from the records that dining halls, caregivers and inspectors synced to the county. Money in yuan.',
    csv: 'CSV', csv_title: 'Download as CSV', refresh: 'Refresh',
    e_forbidden_scope: 'You may not see another township\'s data.', e_forbidden_role: 'Your account may not do this.',
    e_no_session: 'Your session ended. Please sign in again.', e_not_found: 'Not found.',
    e_already_resolved: 'Someone resolved this conflict meanwhile.', e_csrf: 'The request was refused. Reload the page.',
    e_generic: 'Request failed', e_network: 'Cannot reach the server.',
    yuan: 'yuan', households: 'homes', people: 'people', times: '', pieces: 'items', days_n: 'days',
  },
};

const LANG_KEY = 'eldersync.lang';
let lang = (function () {
  try { const v = localStorage.getItem(LANG_KEY); return v === 'en' ? 'en' : 'zh'; } catch (e) { return 'zh'; }
})();

function t(key, vars) {
  let s = I18N[lang][key];
  if (s === undefined) s = I18N.zh[key];
  if (s === undefined) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  return s;
}
/* A label for an API code (status, kind, category...): translated if known. */
function tl(prefix, code) {
  if (code === null || code === undefined || code === '') return '—';
  const k = prefix + code;
  return (I18N[lang][k] !== undefined || I18N.zh[k] !== undefined) ? t(k) : String(code);
}

function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('app');
  render();
}

/* ---- formatting ----------------------------------------------------- */

function num(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return Number(n).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US');
}
/* Integer fen -> "¥1,234.56": integer arithmetic, no rounding surprises. */
function yuan(fen) {
  if (fen === null || fen === undefined) return '—';
  const f = Math.round(Number(fen));
  const neg = f < 0, a = Math.abs(f);
  const y = Math.floor(a / 100), c = a % 100;
  return (neg ? '-' : '') + '¥' + y.toLocaleString('en-US') + '.' + (c < 10 ? '0' : '') + c;
}
function pct(a, b) {
  if (!b) return '—';
  return (Math.round((a / b) * 1000) / 10).toFixed(1) + '%';
}
function fmtTime(ms) {
  if (!ms) return t('never');
  const d = new Date(Number(ms));
  const p = (x) => (x < 10 ? '0' : '') + x;
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
}
/* Ids are UUIDv7: the first digits are a timestamp shared by rows made
 * together, so the short form is the random tail. */
function shortId(id) { return id ? '…' + String(id).slice(-8) : '—'; }
function isMoneyKey(k) { return /_fen$/.test(k); }
function monthLabel(m) {
  if (!m) return '';
  const [y, mo] = m.split('-');
  return lang === 'zh' ? y + '年' + Number(mo) + '月' : new Date(Number(y), Number(mo) - 1, 1)
    .toLocaleString('en-US', { month: 'long', year: 'numeric' });
}
function monthShort(m) {
  const mo = Number(m.slice(5, 7));
  if (lang === 'zh') return mo === 1 ? m.slice(0, 4) + '年1月' : mo + '月';
  const n = new Date(2000, mo - 1, 1).toLocaleString('en-US', { month: 'short' });
  return mo === 1 ? n + ' ' + m.slice(0, 4) : n;
}
function dayLabel(d) { return d ? d.slice(5).replace('-', '/') : ''; }

/* ---- DOM helpers ---------------------------------------------------- */

const SVGNS = 'http://www.w3.org/2000/svg';
function build(el, attrs, kids) {
  if (attrs) {
    for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.setAttribute('class', v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value' && 'value' in el && el.namespaceURI !== SVGNS) el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return el;
}
function h(tag, attrs, ...kids) { return build(document.createElement(tag), attrs, kids); }
function s(tag, attrs, ...kids) { return build(document.createElementNS(SVGNS, tag), attrs, kids); }
function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

const ICONS = {
  overview: 'M3 13h8V3H3zm10 8h8V11h-8zM3 21h8v-6H3zm10-18v6h8V3z',
  meals: 'M8 2v8a2 2 0 0 1-2 2v10H4V12a2 2 0 0 1-2-2V2h1.5v6h1V2h1.5v6h1V2zm10 0c-2 0-4 2.5-4 6v5h2v9h2z',
  retrofits: 'M12 3 2 12h3v8h5v-6h4v6h5v-8h3z',
  visits: 'M12 21s-7.5-4.6-7.5-10.4A4.3 4.3 0 0 1 12 8a4.3 4.3 0 0 1 7.5 2.6C19.5 16.4 12 21 12 21z',
  devices: 'M6 2h12a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm0 3v13h12V5zm6 14.2a1 1 0 1 0 0 .01z',
  conflicts: 'M7 4 3 8l4 4V9h7V7H7zm10 8v3h-7v2h7v3l4-4z',
  report: 'M6 2h9l5 5v15H6zm8 1.5V8h4.5M9 12h8M9 15.5h8M9 19h5',
  download: 'M12 3v11m0 0-4-4m4 4 4-4M4 17v3h16v-3',
};
function icon(name) {
  const stroke = name === 'report' || name === 'download';
  return s('svg', { viewBox: '0 0 24 24', 'aria-hidden': 'true' },
    s('path', stroke ? { d: ICONS[name], fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8,
      'stroke-linecap': 'round', 'stroke-linejoin': 'round' } : { d: ICONS[name], fill: 'currentColor' }));
}
function logo(cls) {
  return s('svg', { class: cls || 'logo', viewBox: '0 0 32 32', 'aria-hidden': 'true' },
    s('rect', { width: 32, height: 32, rx: 7, fill: '#2b6a94' }),
    s('path', { d: 'M16 25s-8-4.9-8-10.6A4.4 4.4 0 0 1 16 12a4.4 4.4 0 0 1 8 2.4C24 20.1 16 25 16 25z', fill: '#f4c46a' }),
    s('path', { d: 'M9 9.5 16 5l7 4.5', fill: 'none', stroke: '#fff', 'stroke-width': 1.8, 'stroke-linecap': 'round' }));
}

/* ---- tooltip: <title> stays for accessibility; shown at once while hovered */

let tipEl = null, tipHost = null;
function tipOn(ev) {
  const host = ev.target.closest && ev.target.closest('[data-tip]');
  if (!host) { tipOff(); return; }
  if (!tipEl) { tipEl = h('div', { class: 'tip' }); document.body.appendChild(tipEl); }
  if (host !== tipHost) {
    tipOff();
    tipHost = host;
    const title = host.querySelector(':scope > title');
    if (title) { host.dataset.tipTitle = title.textContent; title.textContent = ''; }
    tipEl.textContent = host.getAttribute('data-tip');
    tipEl.classList.remove('hidden');
  }
  const x = Math.min(ev.clientX + 14, window.innerWidth - tipEl.offsetWidth - 8);
  tipEl.style.left = x + 'px';
  tipEl.style.top = (ev.clientY + 16) + 'px';
}
function tipOff() {
  if (tipHost) {
    const title = tipHost.querySelector(':scope > title');
    if (title && tipHost.dataset.tipTitle !== undefined) title.textContent = tipHost.dataset.tipTitle;
    delete tipHost.dataset.tipTitle;
    tipHost = null;
  }
  if (tipEl) tipEl.classList.add('hidden');
}
document.addEventListener('mousemove', tipOn);
document.addEventListener('scroll', tipOff, true);
/* A <title> and a data-tip with the same text: the number on hover. */
function tip(el, text) { el.setAttribute('data-tip', text); el.insertBefore(s('title', null, text), el.firstChild); return el; }

/* ---- API ------------------------------------------------------------ */

class ApiError extends Error {
  constructor(status, code, detail) { super(detail || code); this.status = status; this.code = code; }
}
const state = { user: null, csrf: null, scopes: null, route: 'overview', params: {}, flash: null };

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || 'GET', credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  if (init.method !== 'GET' && state.csrf) init.headers['X-CSRF-Token'] = state.csrf;
  let r;
  try { r = await fetch(path, init); } catch (e) { throw new ApiError(0, 'network', t('e_network')); }
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const err = new ApiError(r.status, (body && body.error) || 'http_' + r.status, body && body.detail);
    if (r.status === 401 && path !== '/api/login' && !opts.quiet && state.user) { state.user = null; state.expired = true; render(); }
    throw err;
  }
  return body;
}
function qs(params) {
  const p = new URLSearchParams();
  for (const k of Object.keys(params)) if (params[k] !== undefined && params[k] !== null && params[k] !== '') p.set(k, params[k]);
  const q = p.toString();
  return q ? '?' + q : '';
}
function errText(e) {
  if (e && e.code && I18N.zh['e_' + e.code]) return t('e_' + e.code);
  return t('e_generic') + (e && e.status ? ' (' + e.status + (e.code ? ' ' + e.code : '') + ')' : '');
}

/* ---- routing: #/view?month=..&township=.. ---------------------------- */

const VIEWS = ['overview', 'meals', 'retrofits', 'visits', 'devices', 'conflicts', 'report'];
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  state.route = VIEWS.includes(path) ? path : 'overview';
  state.params = Object.fromEntries(new URLSearchParams(query || ''));
}
function go(view, params) {
  const p = Object.assign({}, params);
  for (const k of Object.keys(p)) if (p[k] === '' || p[k] === undefined || p[k] === null) delete p[k];
  const q = new URLSearchParams(p).toString();
  const target = '#/' + view + (q ? '?' + q : '');
  if (location.hash === target) render(); else location.hash = target;
}
function setParam(k, v) { const p = Object.assign({}, state.params); p[k] = v; go(state.route, p); }
window.addEventListener('hashchange', () => { parseHash(); render(); });

/* The township the views are narrowed to ('' = whole county). */
function township() {
  if (state.user && state.user.role === 'township_supervisor') return state.user.township_id || '';
  return state.params.township || '';
}
function canAdmin() { return state.user && state.user.role === 'county_admin'; }
function canIssue() { return state.user && (state.user.role === 'county_admin' || state.user.role === 'township_supervisor'); }

/* ---- charts --------------------------------------------------------- */

const PALETTE = ['#2f6f9f', '#49a394', '#d9a441', '#8a7fb8', '#c8705e', '#6d8fa8', '#9bb55a'];

/* An axis from 0 with 3-5 round steps: {max, ticks}. */
function axis(v) {
  if (!(v > 0)) return { max: 4, ticks: [0, 1, 2, 3, 4] };
  const raw = v / 4, e = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * e;
  for (const m of [1, 2, 5, 10]) if (m * e >= raw) { step = m * e; break; }
  step = Math.max(step, 1);
  const max = step * Math.ceil(v / step);
  const out = [];
  for (let x = 0; x <= max + step / 2; x += step) out.push(x);
  return { max, ticks: out };
}
function niceMax(v) { return axis(v).max; }
function axisFmt(v, money) {
  if (money) v = v / 100;
  if (Math.abs(v) >= 10000 && lang === 'zh') return (v / 10000).toLocaleString('zh-CN', { maximumFractionDigits: 1 }) + '万';
  if (Math.abs(v) >= 1000 && lang === 'en') return (v / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 }) + 'k';
  return (Math.round(v * 10) / 10).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US');
}
function legend(series) {
  return h('div', { class: 'legend' }, series.map((se) => h('span', null, h('i', { class: 'sw', 'data-color': se.color }), se.label)));
}
/* Colours set through the CSSOM (allowed under a strict style-src CSP). */
function paintLegend(root) { root.querySelectorAll('i.sw').forEach((i) => { i.style.background = i.dataset.color; }); }

/* Charts are drawn at the width they get on the page (so text keeps its
 * size): a slot is drawn once it is in the document, and again on resize. */
function slot(opts, fn) {
  const el = h('div', { class: 'chart-slot' });
  el._draw = (w) => fn(Object.assign({}, opts, { width: w }));
  return el;
}
function drawCharts(root) {
  root.querySelectorAll('.chart-slot').forEach((el) => {
    const w = Math.max(260, Math.floor(el.clientWidth));
    if (el._w === w) return;
    el._w = w;
    clear(el).appendChild(el._draw(w));
  });
}
let resizeTimer = 0;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => drawCharts(document), 120); });

/* Vertical bars: categories along x; series grouped or stacked.
 * opts: {id, cats: [{key, label}], series: [{key, label, color, values}], stacked, money, height} */
function barChart(opts) {
  if (!opts.width) return slot(opts, barChart);
  const W = opts.width || 720, H = opts.height || 240, L = 48, R = 10, T = 14, B = 28;
  const cats = opts.cats, series = opts.series;
  const totals = cats.map((c, i) => (opts.stacked ? series.reduce((a, se) => a + (se.values[i] || 0), 0)
    : Math.max(0, ...series.map((se) => se.values[i] || 0))));
  const ax = axis(Math.max(0, ...totals)), max = ax.max;
  const pw = W - L - R, ph = H - T - B, bw = pw / Math.max(1, cats.length);
  const y = (v) => T + ph - (v / max) * ph;
  const root = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-testid': opts.id, role: 'img', 'aria-label': opts.title || '' });
  const grid = s('g', { class: 'grid' });
  for (const tv of ax.ticks) {
    grid.appendChild(s('line', { x1: L, x2: W - R, y1: y(tv), y2: y(tv) }));
    grid.appendChild(s('text', { x: L - 6, y: y(tv) + 4, 'text-anchor': 'end' }, axisFmt(tv, opts.money)));
  }
  root.appendChild(grid);
  const every = Math.ceil(cats.length / Math.max(1, Math.floor(pw / 44)));
  cats.forEach((c, i) => {
    const x0 = L + i * bw;
    const inner = Math.min(bw * 0.72, 46);
    let acc = 0;
    series.forEach((se, j) => {
      const v = se.values[i] || 0;
      let x, w, top, hgt;
      if (opts.stacked) { w = inner; x = x0 + (bw - w) / 2; top = y(acc + v); hgt = y(acc) - y(acc + v); acc += v; }
      else { w = inner / series.length; x = x0 + (bw - inner) / 2 + j * w; top = y(v); hgt = y(0) - y(v); }
      const r = s('rect', { class: 'bar', x: x.toFixed(1), y: top.toFixed(1), width: Math.max(1, w - (opts.stacked ? 0 : 1)).toFixed(1),
        height: Math.max(0, hgt).toFixed(1), fill: se.colors ? se.colors[i] : se.color, rx: opts.stacked ? 0 : 2,
        'data-series': se.key, 'data-cat': c.key, 'data-value': v });
      tip(r, `${c.label}  ${se.label}: ${opts.money ? yuan(v) : num(v)}`);
      root.appendChild(r);
    });
    if (i % every === 0 || (i === cats.length - 1 && i % every >= every / 2)) root.appendChild(s('text', { x: x0 + bw / 2, y: H - 9, 'text-anchor': 'middle' }, c.short || c.label));
  });
  root.appendChild(s('line', { class: 'axisline', x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: '#c9d2da' }));
  return root;
}

/* Lines: one per series, points carry the numbers. */
function lineChart(opts) {
  if (!opts.width) return slot(opts, lineChart);
  const W = opts.width || 720, H = opts.height || 220, L = 48, R = 20, T = 14, B = 28;
  const cats = opts.cats, series = opts.series;
  const ax = axis(Math.max(0, ...series.flatMap((se) => se.values.map((v) => v || 0)))), max = ax.max;
  const pw = W - L - R, ph = H - T - B;
  const x = (i) => L + (cats.length <= 1 ? pw / 2 : (i * pw) / (cats.length - 1));
  const y = (v) => T + ph - (v / max) * ph;
  const root = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-testid': opts.id, role: 'img' });
  const grid = s('g', { class: 'grid' });
  for (const tv of ax.ticks) {
    grid.appendChild(s('line', { x1: L, x2: W - R, y1: y(tv), y2: y(tv) }));
    grid.appendChild(s('text', { x: L - 6, y: y(tv) + 4, 'text-anchor': 'end' }, axisFmt(tv, opts.money)));
  }
  root.appendChild(grid);
  const every = Math.ceil(cats.length / Math.max(1, Math.floor(pw / 52)));
  cats.forEach((c, i) => { if (i % every === 0 || (i === cats.length - 1 && i % every >= every / 2)) root.appendChild(s('text', { x: x(i), y: H - 9, 'text-anchor': 'middle' }, c.short || c.label)); });
  series.forEach((se) => {
    const pts = se.values.map((v, i) => `${x(i).toFixed(1)},${y(v || 0).toFixed(1)}`);
    if (opts.area && series.length === 1 && cats.length > 1) {
      root.appendChild(s('path', { d: `M${x(0)},${y(0)} L${pts.join(' L')} L${x(cats.length - 1)},${y(0)} Z`, fill: se.color, opacity: 0.1 }));
    }
    root.appendChild(s('polyline', { points: pts.join(' '), fill: 'none', stroke: se.color, 'stroke-width': 2.2, 'stroke-linejoin': 'round' }));
    se.values.forEach((v, i) => {
      const g = s('g', { class: 'hit' });
      g.appendChild(s('circle', { cx: x(i), cy: y(v || 0), r: 11, fill: 'transparent' }));
      g.appendChild(s('circle', { class: 'pt', cx: x(i), cy: y(v || 0), r: cats.length > 20 ? 2.6 : 3.6, fill: '#fff', stroke: se.color, 'stroke-width': 2,
        'data-series': se.key, 'data-cat': cats[i].key, 'data-value': v || 0 }));
      tip(g, `${cats[i].label}  ${se.label}: ${opts.money ? yuan(v || 0) : num(v || 0)}`);
      root.appendChild(g);
    });
  });
  return root;
}

/* Horizontal bars, one row per item; parts stacked; an optional "of" total
 * drawn as a pale track (coverage: visited of must). */
function hbarChart(opts) {
  if (!opts.width) return slot(opts, hbarChart);
  const rows = opts.rows, W = opts.width, L = opts.labelWidth || 120, R = 92, T = 4;
  const rowH = Math.max(30, Math.min(44, Math.floor(180 / Math.max(1, rows.length))));
  const H = T + rows.length * rowH + 6;
  const max = niceMax(Math.max(1, ...rows.map((r) => Math.max(r.of || 0, r.parts.reduce((a, p) => a + p.value, 0)))));
  const pw = W - L - R;
  const root = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-testid': opts.id, role: 'img' });
  rows.forEach((r, i) => {
    const yy = T + i * rowH;
    root.appendChild(s('text', { class: 'lbl', x: L - 10, y: yy + rowH / 2 + 4, 'text-anchor': 'end' }, r.label));
    if (r.of !== undefined) {
      const track = s('rect', { x: L, y: yy + (rowH - 16) / 2, width: Math.max(1, (r.of / max) * pw), height: 16, rx: 3, fill: '#e8edf2' });
      root.appendChild(track);
    }
    let acc = 0;
    r.parts.forEach((p) => {
      const w = (p.value / max) * pw;
      const rect = s('rect', { class: 'bar', x: L + acc, y: yy + (rowH - 16) / 2, width: Math.max(0, w), height: 16, fill: p.color,
        rx: r.parts.length === 1 ? 3 : 0, 'data-testid': r.testid ? r.testid + '-' + p.key : null, 'data-series': p.key,
        'data-cat': r.key, 'data-value': p.value, 'data-of': r.of });
      tip(rect, `${r.label}  ${p.label}: ${opts.money ? yuan(p.value) : num(p.value)}` + (r.of !== undefined ? ` / ${num(r.of)}` : ''));
      root.appendChild(rect);
      acc += w;
    });
    const total = r.parts.reduce((a, p) => a + p.value, 0);
    const label = r.of !== undefined ? `${num(total)} / ${num(r.of)}` : (opts.money ? yuan(total) : num(total));
    const lx = L + Math.max(acc, r.of !== undefined ? (r.of / max) * pw : 0) + 8;
    const fits = lx + label.length * 7 < W;
    root.appendChild(s('text', { class: 'val', x: fits ? lx : W - 2, y: yy + rowH / 2 + 4, 'text-anchor': fits ? 'start' : 'end' }, label));
  });
  return root;
}

/* The retrofit funnel: centred bars narrowing through the workflow, with
 * the annual target drawn as a dashed frame of its own width. */
function funnelChart(opts) {
  if (!opts.width) return slot(opts, funnelChart);
  const stages = opts.stages, target = opts.target || 0;
  const W = opts.width, rowH = 40, L = 96, R = 130, T = 8;
  const H = T + stages.length * rowH + 22;
  const max = Math.max(1, target, ...stages.map((st) => st.count));
  const pw = W - L - R, cx = L + pw / 2;
  const root = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-testid': opts.id, role: 'img' });
  stages.forEach((st, i) => {
    const yy = T + i * rowH, w = Math.max(3, (st.count / max) * pw);
    const next = stages[i + 1];
    if (next) {
      const w2 = Math.max(3, (next.count / max) * pw);
      root.appendChild(s('path', { d: `M${cx - w / 2},${yy + 30} L${cx + w / 2},${yy + 30} L${cx + w2 / 2},${yy + rowH} L${cx - w2 / 2},${yy + rowH} Z`,
        fill: PALETTE[0], opacity: 0.1 }));
    }
    const r = s('rect', { class: 'bar', x: cx - w / 2, y: yy, width: w, height: 30, rx: 4, fill: PALETTE[0],
      opacity: 1 - i * 0.1, 'data-testid': 'funnel-' + st.status, 'data-value': st.count });
    tip(r, `${tl('', st.status)}: ${num(st.count)}` + (target ? `  (${pct(st.count, target)} ${t('of_target')})` : ''));
    root.appendChild(r);
    root.appendChild(s('text', { class: 'lbl', x: L - 12, y: yy + 20, 'text-anchor': 'end' }, tl('', st.status)));
    root.appendChild(s('text', { class: 'val', x: W - R + 14, y: yy + 20 }, num(st.count) + ' ' + t('households')));
    if (target) root.appendChild(s('text', { x: W - 8, y: yy + 20, 'text-anchor': 'end' }, pct(st.count, target)));
  });
  if (target) {
    const tw = (target / max) * pw;
    root.appendChild(s('rect', { class: 'target', x: cx - tw / 2, y: T - 4, width: tw, height: stages.length * rowH - 2, rx: 6,
      'data-testid': 'funnel-target', 'data-value': target }));
    root.appendChild(s('text', { class: 'target-lbl', x: cx, y: H - 4, 'text-anchor': 'middle' }, t('target_n', { n: num(target) })));
  }
  return root;
}

/* This month against last month, one row per figure, each on its own
 * scale (meals and yuan do not share an axis). */
function pairChart(opts) {
  if (!opts.width) return slot(opts, pairChart);
  const rows = opts.rows, W = opts.width, rowH = 44, L = 104, R = 110, T = 4;
  const H = T + rows.length * rowH;
  const pw = W - L - R;
  const root = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-testid': opts.id, role: 'img' });
  rows.forEach((r, i) => {
    const yy = T + i * rowH, max = Math.max(1, r.prev, r.cur);
    const fmt = (v) => (r.money ? yuan(v) : num(v));
    if (i) root.appendChild(s('line', { x1: 0, x2: W, y1: yy - 3, y2: yy - 3, stroke: '#eef1f4' }));
    root.appendChild(s('text', { class: 'lbl', x: L - 12, y: yy + 22, 'text-anchor': 'end' }, r.label));
    [['prev', r.prev, '#b7c6d3', opts.prevLabel, 4], ['cur', r.cur, PALETTE[0], opts.curLabel, 20]].forEach(([k, v, color, lab, dy]) => {
      const w = Math.max(v ? 2 : 0, (v / max) * pw);
      const rect = s('rect', { class: 'bar', x: L, y: yy + dy, width: w, height: 13, rx: 2, fill: color,
        'data-testid': 'cmp-' + r.key + '-' + k, 'data-value': v });
      tip(rect, `${r.label}  ${lab}: ${fmt(v)}`);
      root.appendChild(rect);
      root.appendChild(s('text', { class: k === 'cur' ? 'val' : '', x: L + w + 7, y: yy + dy + 11 }, fmt(v)));
    });
  });
  return root;
}

/* A ring: part of whole, the share in the middle. */
function donut(opts) {
  const R = 62, C = 2 * Math.PI * R, frac = opts.total ? Math.min(1, opts.value / opts.total) : 0;
  const root = s('svg', { class: 'chart', viewBox: '0 0 170 170', 'data-testid': opts.id, 'data-value': opts.value, 'data-total': opts.total, role: 'img' });
  root.appendChild(s('circle', { cx: 85, cy: 85, r: R, fill: 'none', stroke: '#e8edf2', 'stroke-width': 18 }));
  const arc = s('circle', { cx: 85, cy: 85, r: R, fill: 'none', stroke: opts.color || PALETTE[1], 'stroke-width': 18,
    'stroke-dasharray': `${(C * frac).toFixed(2)} ${C.toFixed(2)}`, transform: 'rotate(-90 85 85)', 'stroke-linecap': frac > 0 && frac < 1 ? 'round' : 'butt' });
  tip(arc, `${opts.label}: ${num(opts.value)} / ${num(opts.total)}`);
  root.appendChild(arc);
  root.appendChild(s('text', { x: 85, y: 88, 'text-anchor': 'middle', class: 'val', 'font-size': 24 }, opts.total ? pct(opts.value, opts.total) : '—'));
  root.appendChild(s('text', { x: 85, y: 110, 'text-anchor': 'middle' }, `${num(opts.value)} / ${num(opts.total)}`));
  return root;
}

/* ---- page pieces ---------------------------------------------------- */

function csvLink(view, table, params) {
  const q = Object.assign({}, params, { format: 'csv', table: table });
  return h('a', { class: 'btn btn-csv', href: '/api/' + view + qs(q), download: '', title: t('csv_title'),
    'data-testid': 'csv-' + view + '-' + table }, icon('download'), t('csv'));
}
function card(title, opts, ...body) {
  opts = opts || {};
  return h('section', { class: 'card' + (opts.cls ? ' ' + opts.cls : ''), 'data-testid': opts.testid },
    h('header', null, h('h3', null, title), opts.hint ? h('span', { class: 'hint' }, opts.hint) : null,
      h('div', { class: 'tools' }, opts.tools || null)),
    h('div', { class: 'body' + (opts.flush ? ' flush' : '') }, body));
}
function kpi(key, label, value, opts) {
  opts = opts || {};
  const money = isMoneyKey(key);
  const main = money ? yuan(value) : num(value);
  const el = h('div', { class: 'card kpi ' + (opts.cls || ''), 'data-testid': 'kpi-' + key, 'data-value': value },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, main, !money && opts.unit ? h('small', null, opts.unit) : null));
  if (opts.prev !== undefined) {
    const d = value - opts.prev;
    const cls = d > 0 ? 'up' : d < 0 ? 'down' : 'flat';
    const txt = d === 0 ? t('no_change') : (d > 0 ? '▲ ' : '▼ ') + (opts.prev ? pct(Math.abs(d), opts.prev) : (money ? yuan(Math.abs(d)) : num(Math.abs(d))));
    el.appendChild(h('div', { class: 'cmp' },
      h('span', { class: 'delta ' + cls, 'data-testid': 'kpi-' + key + '-delta', 'data-value': d }, txt),
      h('span', { 'data-testid': 'kpi-' + key + '-prev', 'data-value': opts.prev }, t('last_month') + ' ' + (money ? yuan(opts.prev) : num(opts.prev)))));
  } else if (opts.sub) {
    el.appendChild(h('div', { class: 'cmp' }, opts.sub));
  }
  return el;
}
/* A table: cols [{key, label, num, money, fmt(row), testid}], rows of objects. */
function table(opts) {
  const cols = opts.cols;
  const thead = h('thead', null, h('tr', null, cols.map((c) => h('th', { class: c.num || c.money ? 'num' : c.cls }, c.label))));
  const tbody = h('tbody');
  for (const row of opts.rows) {
    const tr = h('tr', { 'data-testid': opts.rowid, 'data-id': opts.idkey ? row[opts.idkey] : null });
    for (const c of cols) {
      const v = row[c.key];
      let content = c.fmt ? c.fmt(row) : c.money ? yuan(v) : c.num ? num(v) : (v === null || v === undefined || v === '' ? '—' : v);
      const td = h('td', { class: (c.num || c.money ? 'num' : '') + (c.cls ? ' ' + c.cls : ''),
        'data-testid': c.testid || (opts.rowid ? opts.rowid.replace(/-row$/, '') + '-' + c.key : null),
        'data-value': (c.num || c.money) && typeof v === 'number' ? v : null }, content);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  const tbl = h('table', { class: 'tbl', 'data-testid': opts.id }, thead, tbody);
  if (opts.foot) tbl.appendChild(h('tfoot', null, h('tr', null, opts.foot)));
  if (!opts.rows.length) return h('div', null, tbl.tHead ? h('div', { class: 'empty' }, opts.empty || t('none')) : null);
  return h('div', { class: 'tbl-wrap' }, tbl);
}
function errorBox(e) {
  return h('div', { class: 'errbox', 'data-testid': 'error', 'data-code': e.code || '', 'data-status': e.status || 0 },
    h('b', null, errText(e)), e.message && e.message !== e.code ? h('span', { class: 'muted' }, e.message) : null);
}
/* Month picker: a list in the page's own language (a native month input
 * speaks the browser's), the 24 months to this one. */
function monthControl(value) {
  const now = new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 7);
  const months = lastMonths(now, 24);
  if (value && !months.includes(value)) months.unshift(value);
  const sel = h('select', { 'data-testid': 'month', onchange: (ev) => setParam('month', ev.target.value) },
    months.map((m) => h('option', { value: m, selected: m === value }, monthLabel(m))));
  return h('label', { class: 'control' }, t('month'), sel);
}
/* The n months ending with m ("YYYY-MM"), newest first. */
function lastMonths(m, n) {
  let y = Number(m.slice(0, 4)), mo = Number(m.slice(5, 7));
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(y + '-' + (mo < 10 ? '0' : '') + mo);
    if (--mo === 0) { mo = 12; y--; }
  }
  return out;
}
/* Every day of month m ("YYYY-MM"): up to today (China time) for the
 * current month, so the daily charts keep their scale from day to day. */
function monthDates(m) {
  const today = new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 10);
  const y = Number(m.slice(0, 4)), mo = Number(m.slice(5, 7));
  const n = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  const out = [];
  for (let d = 1; d <= n; d++) {
    const k = m + '-' + (d < 10 ? '0' : '') + d;
    if (k > today && out.length) break;
    out.push(k);
  }
  return out;
}
/* The API's monthly series as exactly the 12 months to m, gaps as zero. */
function twelve(m, rows) {
  const by = Object.fromEntries((rows || []).map((r) => [r.month, r]));
  return lastMonths(m, 12).reverse().map((k) => by[k] || { month: k, meals: 0, subsidy_fen: 0 });
}
function yearControl(value) {
  const now = new Date().getFullYear(), cur = Number(value) || now;
  const years = [];
  for (let y = Math.max(now, cur); y >= Math.min(now, cur) - 4; y--) years.push(y);
  return h('label', { class: 'control' }, t('year'),
    h('select', { 'data-testid': 'year', onchange: (ev) => setParam('year', ev.target.value) },
      years.map((y) => h('option', { value: y, selected: y === cur }, lang === 'zh' ? y + '年' : String(y)))));
}
function townshipName(id) {
  if (!id) return t('all_townships');
  const tw = state.scopes && state.scopes.townships.find((x) => x.id === id);
  return tw ? tw.name : id;
}

/* ---- views ---------------------------------------------------------- */

const FIGS = ['meals', 'subsidy_fen', 'visits', 'cash_fen', 'goods_value_fen', 'retrofits_accepted'];
const UNITS = { meals: 'times', visits: 'times', retrofits_accepted: 'households' };

async function viewOverview(p) {
  const tw = township();
  const [ov, meals] = await Promise.all([
    api('/api/overview' + qs({ month: p.month, township: tw })),
    api('/api/meals' + qs({ month: p.month, township: tw })).catch(() => null),
  ]);
  const attnKinds = { open_conflicts: ['conflicts', 'hot'], overdue_retrofits: ['retrofits', 'warm'],
    unvisited_must_visit: ['visits', 'warm'], stale_devices: ['devices', 'warm'], duplicate_claims: ['meals', 'warm'] };
  const kpis = h('div', { class: 'kpis' }, FIGS.map((k, i) => kpi(k, t('f_' + k), ov.figures[k],
    { prev: ov.prev ? ov.prev[k] : undefined, cls: 'k' + ((i % 5) + 1), unit: UNITS[k] ? t(UNITS[k]) : '' })));
  const items = (ov.attention || []);
  const attn = h('ul', { class: 'attn', 'data-testid': 'attention' }, items.map((a) => {
    const [view, heat] = attnKinds[a.kind] || ['overview', 'warm'];
    return h('li', { class: a.count > 0 ? heat : '', 'data-testid': 'attn-' + a.kind, 'data-value': a.count },
      h('span', { class: 'dot' }), h('span', { class: 'what' }, tl('a_', a.kind)),
      h('span', { class: 'count' }, num(a.count)),
      h('a', { href: '#/' + view + qs(tw ? { township: state.params.township } : {}), class: 'btn btn-sm' }, '→'));
  }));
  const total = items.reduce((a, x) => a + (x.count || 0), 0);
  const cmp = pairChart({ id: 'chart-overview-compare', prevLabel: monthLabel(ov.prev_month), curLabel: monthLabel(ov.month),
    rows: FIGS.map((k) => ({ key: k, label: t('f_' + k), prev: ov.prev ? ov.prev[k] : 0, cur: ov.figures[k], money: isMoneyKey(k) })) });
  const cmpSeries = [{ label: monthLabel(ov.prev_month), color: '#b7c6d3' }, { label: monthLabel(ov.month), color: PALETTE[0] }];
  let trend = null;
  if (meals && meals.months) {
    const ms = twelve(meals.month, meals.months);
    trend = card(t('trend12'), null,
      lineChart({ id: 'chart-overview-trend', area: true, height: 220,
        cats: ms.map((m) => ({ key: m.month, label: monthLabel(m.month), short: monthShort(m.month) })),
        series: [{ key: 'meals', label: t('f_meals'), color: PALETTE[0], values: ms.map((m) => m.meals) }] }));
  }
  const page = h('div', { class: 'content', 'data-testid': 'view-overview', 'data-month': ov.month },
    kpis,
    h('div', { class: 'grid g-2-1' },
      h('div', { class: 'grid' },
        card(t('compare'), { hint: monthLabel(ov.month) + ' / ' + monthLabel(ov.prev_month), tools: csvLink('overview', 'figures', { month: ov.month, township: tw }) },
          legend(cmpSeries), cmp),
        trend),
      card(t('attention'), { testid: 'attention-card', cls: 'attn-card' }, total === 0 ? h('div', { class: 'empty' }, t('all_clear')) : null, attn)));
  return { page, month: ov.month };
}

async function viewMeals(p) {
  const tw = township();
  const m = await api('/api/meals' + qs({ month: p.month, township: tw }));
  const cp = { month: m.month, township: tw };
  const T = m.totals;
  const kpis = h('div', { class: 'kpis' },
    kpi('meals', t('f_meals'), T.meals, { unit: t('times'), sub: `${t('dine_in')} ${num(T.dine_in)} · ${t('delivery')} ${num(T.delivery)}` }),
    kpi('dine_in', t('dine_in'), T.dine_in, { cls: 'k1', unit: t('times'), sub: pct(T.dine_in, T.meals) }),
    kpi('delivery', t('delivery'), T.delivery, { cls: 'k2', unit: t('times'), sub: pct(T.delivery, T.meals) }),
    kpi('subsidy_fen', t('f_subsidy_fen'), T.subsidy_fen, { cls: 'k3' }),
    kpi('paid_fen', t('paid_fen'), T.paid_fen, { cls: 'k4' }));
  const byDay = Object.fromEntries(m.days.map((d) => [d.date, d]));
  const mdays = monthDates(m.month).map((d) => byDay[d] || { date: d, dine_in: 0, delivery: 0, subsidy_fen: 0 });
  const dser = [
    { key: 'dine_in', label: t('dine_in'), color: PALETTE[0], values: mdays.map((d) => d.dine_in) },
    { key: 'delivery', label: t('delivery'), color: PALETTE[1], values: mdays.map((d) => d.delivery) },
  ];
  const days = card(t('meals_by_day'), { hint: monthLabel(m.month), tools: csvLink('meals', 'days', cp) },
    legend(dser), m.days.length ? barChart({ id: 'chart-meals-days', stacked: true, cats: mdays.map((d) => ({ key: d.date, label: d.date, short: dayLabel(d.date) })), series: dser })
      : h('div', { class: 'empty' }, t('none')));
  const halls = m.halls.slice().sort((a, b) => b.meals - a.meals);
  const hallChart = card(t('meals_by_hall'), { tools: csvLink('meals', 'halls', cp) }, legend(dser.slice(0, 2)),
    halls.length ? hbarChart({ id: 'chart-meals-halls', labelWidth: 130, rows: halls.map((x) => ({ key: x.hall_id, label: x.name, testid: 'hallbar-' + x.hall_id,
      parts: [{ key: 'dine_in', label: t('dine_in'), value: x.dine_in, color: PALETTE[0] }, { key: 'delivery', label: t('delivery'), value: x.delivery, color: PALETTE[1] }] })) })
      : h('div', { class: 'empty' }, t('none')));
  const maxMeals = Math.max(1, ...halls.map((x) => x.meals));
  const hallTable = card(t('halls'), { flush: true, tools: csvLink('meals', 'halls', cp) }, table({
    id: 'table-halls', rowid: 'hall-row', idkey: 'hall_id', rows: halls,
    cols: [
      { key: 'name', label: t('hall') }, { key: 'township', label: t('township') },
      { key: 'meals', label: t('f_meals'), num: true }, { key: 'dine_in', label: t('dine_in'), num: true },
      { key: 'delivery', label: t('delivery'), num: true }, { key: 'subsidy_fen', label: t('f_subsidy_fen'), money: true },
      { key: '_bar', label: '', cls: 'bar-cell', fmt: (r) => {
        const b = h('div', { class: 'minibar' }, h('i', { class: 'b1' }), h('i', { class: 'b2' }));
        b.children[0].style.width = (100 * r.dine_in / maxMeals) + '%';
        b.children[1].style.width = (100 * r.delivery / maxMeals) + '%';
        return b;
      } },
    ],
    foot: [h('td', null, t('total')), h('td'), h('td', { class: 'num', 'data-testid': 'halls-total-meals', 'data-value': T.meals }, num(T.meals)),
      h('td', { class: 'num' }, num(T.dine_in)), h('td', { class: 'num' }, num(T.delivery)),
      h('td', { class: 'num', 'data-testid': 'halls-total-subsidy', 'data-value': T.subsidy_fen }, yuan(T.subsidy_fen)), h('td')],
  }));
  /* per hall per day: one line per hall */
  const dates = mdays.map((d) => d.date);
  const hallNames = Object.fromEntries(m.halls.map((x) => [x.hall_id, x.name]));
  const hds = halls.map((x, i) => {
    const byDate = {};
    for (const r of m.hall_days) if (r.hall_id === x.hall_id) byDate[r.date] = r.meals;
    return { key: x.hall_id, label: hallNames[x.hall_id], color: PALETTE[i % PALETTE.length], values: dates.map((d) => byDate[d] || 0) };
  });
  const hallDays = card(t('hall_day'), { tools: csvLink('meals', 'hall_days', cp) }, legend(hds),
    dates.length ? lineChart({ id: 'chart-hall-days', cats: dates.map((d) => ({ key: d, label: d, short: dayLabel(d) })), series: hds })
      : h('div', { class: 'empty' }, t('none')));
  const m12 = twelve(m.month, m.months);
  const months = card(t('trend12'), null, lineChart({ id: 'chart-meals-months', area: true, height: 200,
    cats: m12.map((x) => ({ key: x.month, label: monthLabel(x.month), short: monthShort(x.month) })),
    series: [{ key: 'meals', label: t('f_meals'), color: PALETTE[0], values: m12.map((x) => x.meals) }] }));
  const subsidyMonths = card(t('f_subsidy_fen'), { hint: t('last12') }, barChart({ id: 'chart-subsidy-months', money: true, height: 200,
    cats: m12.map((x) => ({ key: x.month, label: monthLabel(x.month), short: monthShort(x.month) })),
    series: [{ key: 'subsidy_fen', label: t('f_subsidy_fen'), color: PALETTE[2], values: m12.map((x) => x.subsidy_fen) }] }));
  const dups = card(t('duplicates'), { hint: t('duplicates_hint'), flush: true, testid: 'dups-card', tools: [
      h('span', { class: 'tag warn', 'data-testid': 'dup-count', 'data-value': m.duplicates.length }, num(m.duplicates.length)),
      csvLink('meals', 'duplicates', cp)] },
    table({ id: 'table-dups', rowid: 'dup-row', idkey: 'conflict_id', rows: m.duplicates, cols: [
      { key: 'date', label: t('date') }, { key: 'period', label: t('period'), fmt: (r) => tl('', r.period) },
      { key: 'hall', label: t('hall') }, { key: 'at', label: t('at'), fmt: (r) => fmtTime(r.at) },
      { key: 'status', label: t('status'), fmt: (r) => h('span', { class: 'tag ' + (r.status === 'open' ? 'warn' : 'ok') }, tl('', r.status)) },
      { key: '_go', label: '', fmt: (r) => r.status === 'open' ? h('a', { class: 'btn btn-sm', href: '#/conflicts' }, t('conflicts')) : '' }] }));
  const page = h('div', { class: 'content', 'data-testid': 'view-meals', 'data-month': m.month },
    kpis, days, h('div', { class: 'grid g2' }, hallChart, hallDays), hallTable,
    h('div', { class: 'grid g2' }, months, subsidyMonths), dups);
  return { page, month: m.month };
}

async function viewRetrofits(p) {
  const tw = township();
  const r = await api('/api/retrofits' + qs({ year: p.year, township: tw }));
  const cp = { year: r.year, township: tw };
  const byStatus = Object.fromEntries(r.funnel.map((f) => [f.status, f.count]));
  const done = (byStatus.accepted || 0);
  const kpis = h('div', { class: 'kpis' },
    kpi('target', t('target'), r.target, { unit: t('households') }),
    kpi('accepted', t('accepted'), done, { cls: 'k2', unit: t('households'), sub: r.target ? pct(done, r.target) + ' ' + t('of_target') : '' }),
    kpi('estimated_fen', t('estimated_fen'), r.costs.estimated_fen, { cls: 'k3' }),
    kpi('approved_fen', t('approved_fen'), r.costs.approved_fen, { cls: 'k4' }),
    kpi('final_fen', t('final_fen'), r.costs.final_fen, { cls: 'k5' }));
  const funnel = card(t('funnel'), { hint: String(r.year), tools: csvLink('retrofits', 'funnel', cp) },
    funnelChart({ id: 'chart-retrofit-funnel', stages: r.funnel, target: r.target }));
  const STATUSES = ['applied', 'assessed', 'approved', 'works', 'accepted', 'paid'];
  const tser = STATUSES.map((st, i) => ({ key: st, label: t(st), color: PALETTE[i % PALETTE.length], values: r.townships.map((x) => x[st] || 0) }));
  const twChart = card(t('by_township'), { tools: csvLink('retrofits', 'townships', cp) }, legend(tser),
    r.townships.length ? barChart({ id: 'chart-retrofit-townships', stacked: true, height: 250,
      cats: r.townships.map((x) => ({ key: x.township_id, label: x.name })), series: tser }) : h('div', { class: 'empty' }, t('none')));
  const twTable = card(t('by_township'), { flush: true, tools: csvLink('retrofits', 'townships', cp) }, table({
    id: 'table-retrofit-townships', rowid: 'rtw-row', idkey: 'township_id', rows: r.townships.map((x) => Object.assign({ _total: STATUSES.reduce((a, st) => a + (x[st] || 0), 0) }, x)),
    cols: [{ key: 'name', label: t('township') }].concat(STATUSES.map((st) => ({ key: st, label: t(st), num: true })),
      [{ key: '_total', label: t('total'), num: true }]) }));
  const overdue = card(t('overdue'), { hint: t('overdue_hint'), flush: true, cls: 'scroll', tools: [
      h('span', { class: 'tag ' + (r.overdue.length ? 'bad' : 'ok'), 'data-testid': 'overdue-count', 'data-value': r.overdue.length }, num(r.overdue.length)),
      csvLink('retrofits', 'overdue', cp)] },
    table({ id: 'table-overdue', rowid: 'overdue-row', idkey: 'case_id', rows: r.overdue.slice().sort((a, b) => b.days - a.days), cols: [
      { key: 'case_id', label: t('case_id'), fmt: (x) => h('span', { class: 'mono' }, shortId(x.case_id)) },
      { key: 'township', label: t('township') }, { key: 'status', label: t('status'), fmt: (x) => h('span', { class: 'tag warn' }, tl('', x.status)) },
      { key: 'since', label: t('since') }, { key: 'days', label: t('days'), num: true }] }));
  const page = h('div', { class: 'content', 'data-testid': 'view-retrofits', 'data-year': r.year },
    kpis, h('div', { class: 'grid g2' }, funnel, twChart), twTable, overdue);
  return { page, year: r.year };
}

const KINDS = ['welfare', 'cleaning', 'bathing'];
const KIND_COLORS = { welfare: '#8a7fb8', cleaning: '#d9a441', bathing: '#49a394' };
function kindRank(k) { const i = KINDS.indexOf(k); return i < 0 ? 99 : i; }
function kindColor(k) { return KIND_COLORS[k] || '#6d8fa8'; }

async function viewVisits(p) {
  const tw = township();
  const v = await api('/api/visits' + qs({ month: p.month, campaign: p.campaign, township: tw }));
  const cp = { month: v.month, township: tw, campaign: p.campaign };
  const cov = v.coverage || { must: 0, visited: 0, categories: [], townships: [] };
  const head = v.campaign && v.campaign.id ? h('div', { class: 'card' }, h('div', { class: 'body campaign', 'data-testid': 'campaign', 'data-id': v.campaign.id },
    h('span', { class: 'tag info' }, t('campaign')), h('b', null, v.campaign.name),
    h('span', { class: 'muted' }, v.campaign.start_date + ' — ' + v.campaign.end_date))) : null;
  const covCard = card(t('coverage'), { testid: 'coverage-card' }, h('div', { class: 'donut-wrap' },
    donut({ id: 'coverage', value: cov.visited, total: cov.must, label: t('visited'), color: PALETTE[1] }),
    h('div', { class: 'donut-facts' },
      h('div', null, t('must') + '：', h('b', { 'data-testid': 'cov-must', 'data-value': cov.must }, num(cov.must))),
      h('div', null, t('visited') + '：', h('b', { 'data-testid': 'cov-visited', 'data-value': cov.visited }, num(cov.visited))),
      h('div', null, t('not_visited') + '：', h('b', { 'data-testid': 'cov-unvisited', 'data-value': cov.must - cov.visited }, num(cov.must - cov.visited))))));
  const catCard = card(t('by_category'), null, cov.categories.length ? hbarChart({ id: 'chart-cov-categories', labelWidth: 96,
    rows: cov.categories.map((c) => ({ key: c.category, label: tl('', c.category), of: c.must, testid: 'covcat-' + c.category,
      parts: [{ key: 'visited', label: t('visited'), value: c.visited, color: PALETTE[1] }] })) }) : h('div', { class: 'empty' }, t('none')));
  const twCard = card(t('cov_township'), { tools: csvLink('visits', 'townships', cp) }, cov.townships.length ? hbarChart({ id: 'chart-cov-townships', labelWidth: 72,
    rows: cov.townships.map((c) => ({ key: c.township_id, label: c.name, of: c.must, testid: 'covtw-' + c.township_id,
      parts: [{ key: 'visited', label: t('visited'), value: c.visited, color: PALETTE[0] }] })) }) : h('div', { class: 'empty' }, t('none')));
  const H = v.handouts || { cash_fen: 0, goods_value_fen: 0, goods_count: 0 };
  const kinds = (v.kinds || []).slice().sort((a, b) => kindRank(a.kind) - kindRank(b.kind));
  const totalVisits = kinds.reduce((a, k) => a + k.count, 0);
  const kpis = h('div', { class: 'kpis' },
    kpi('visits', t('f_visits'), totalVisits, { unit: t('times'), sub: monthLabel(v.month) }),
    kpi('cash_fen', t('f_cash_fen'), H.cash_fen, { cls: 'k3' }),
    kpi('goods_value_fen', t('f_goods_value_fen'), H.goods_value_fen, { cls: 'k4' }),
    kpi('goods_count', t('goods_count'), H.goods_count, { cls: 'k5', unit: t('pieces') }));
  const kindCard = card(t('kinds'), { tools: csvLink('visits', 'kinds', cp) }, kinds.length ? barChart({ id: 'chart-visit-kinds', height: 220,
    cats: kinds.map((k) => ({ key: k.kind, label: tl('', k.kind) })),
    series: [{ key: 'count', label: t('f_visits'), color: PALETTE[3], colors: kinds.map((k) => kindColor(k.kind)), values: kinds.map((k) => k.count) }] }) : h('div', { class: 'empty' }, t('none')));
  const dates = (v.days || []).length ? monthDates(v.month) : [];
  const kindKeys = Array.from(new Set((v.days || []).map((d) => d.kind))).sort((a, b) => kindRank(a) - kindRank(b));
  const dser = kindKeys.map((k) => ({ key: k, label: tl('', k), color: kindColor(k),
    values: dates.map((d) => { const r = v.days.find((x) => x.date === d && x.kind === k); return r ? r.count : 0; }) }));
  const dayCard = card(t('visits_by_day'), null, legend(dser), dates.length ? barChart({ id: 'chart-visit-days', stacked: true, height: 220,
    cats: dates.map((d) => ({ key: d, label: d, short: dayLabel(d) })), series: dser }) : h('div', { class: 'empty' }, t('none')));
  const unv = card(t('unvisited'), { flush: true, cls: 'scroll', tools: [h('span', { class: 'tag warn', 'data-testid': 'unvisited-count', 'data-value': v.unvisited.length }, num(v.unvisited.length)),
    csvLink('visits', 'unvisited', cp)] }, table({ id: 'table-unvisited', rowid: 'unvisited-row', idkey: 'senior_id', rows: v.unvisited, cols: [
    { key: 'name', label: t('senior') }, { key: 'township', label: t('township') }, { key: 'village', label: t('village') },
    { key: 'category', label: t('category'), fmt: (r) => h('span', { class: 'tag' }, tl('', r.category)) }] }));
  const page = h('div', { class: 'content', 'data-testid': 'view-visits', 'data-month': v.month },
    head, kpis, h('div', { class: 'grid g3' }, covCard, catCard, twCard), h('div', { class: 'grid g2' }, kindCard, dayCard), unv);
  return { page, month: v.month };
}

async function viewDevices() {
  const tw = township();
  const d = await api('/api/devices' + qs({ township: tw }));
  const now = Date.now();
  const parts = [];
  if (state.flash) { parts.push(h('div', { class: 'flash', 'data-testid': 'flash' }, state.flash)); state.flash = null; }
  if (canIssue()) parts.push(await enrollCard());
  const devs = d.devices.slice().sort((a, b) => (a.status === b.status ? 0 : a.status === 'revoked' ? 1 : -1) || (b.last_sync || 0) - (a.last_sync || 0));
  const cols = [
    { key: 'device_id', label: t('device'), fmt: (r) => h('span', { class: 'mono', title: r.device_id }, shortId(r.device_id)) },
    { key: 'role', label: t('role'), fmt: (r) => tl('r_', r.role) },
    { key: 'scope', label: t('scope'), fmt: (r) => r.hall ? r.hall + (r.township ? ' · ' + r.township : '') : (r.township || '—') },
    { key: 'status', label: t('status'), fmt: (r) => r.status === 'revoked' ? h('span', { class: 'tag bad' }, t('revoked'))
      : (r.last_sync && now - r.last_sync > 3 * 86400000) ? h('span', { class: 'tag warn' }, t('stale')) : h('span', { class: 'tag ok' }, t('active')) },
    { key: 'last_sync', label: t('last_sync'), fmt: (r) => fmtTime(r.last_sync) },
    { key: 'app_version', label: t('app_version') }, { key: 'schema_version', label: t('schema_version'), num: true },
    { key: 'clock_skew_ms', label: t('clock_skew'), num: true, fmt: (r) => (r.clock_skew_ms === null || r.clock_skew_ms === undefined) ? '—' : (Math.abs(r.clock_skew_ms) < 50 ? '0.0' : (r.clock_skew_ms / 1000).toFixed(1)) + ' s' },
    { key: 'open_conflicts', label: t('open_conflicts'), num: true, fmt: (r) => r.open_conflicts ? h('a', { href: '#/conflicts', class: 'badge' }, num(r.open_conflicts)) : '0' },
  ];
  if (canAdmin()) cols.push({ key: '_act', label: '', fmt: (r) => r.status === 'revoked' ? '' : h('button', { class: 'btn btn-sm btn-danger',
    'data-testid': 'revoke-' + r.device_id, onclick: () => revoke(r.device_id) }, t('revoke')) });
  parts.push(card(t('device_list'), { flush: true, hint: t('n_devices', { n: devs.length }), tools: csvLink('devices', 'devices', { township: tw }) },
    table({ id: 'table-devices', rowid: 'device-row', idkey: 'device_id', rows: devs, cols })));
  return { page: h('div', { class: 'content', 'data-testid': 'view-devices' }, parts) };
}
async function revoke(id) {
  if (!window.confirm(t('revoke_confirm'))) return;
  try {
    await api('/api/devices/' + encodeURIComponent(id) + '/revoke', { method: 'POST', body: {} });
    state.flash = t('revoked_ok');
  } catch (e) { state.flash = errText(e); }
  render();
}
async function enrollCard() {
  const scopes = state.scopes || { townships: [], halls: [] };
  const out = h('div', { 'data-testid': 'enroll-out' });
  const roleSel = h('select', { 'data-testid': 'enroll-role' }, ['hall', 'caregiver', 'inspector'].map((r) => h('option', { value: r }, tl('r_', r))));
  const scopeSel = h('select', { 'data-testid': 'enroll-scope' });
  const fill = () => {
    clear(scopeSel);
    const list = roleSel.value === 'hall' ? scopes.halls.filter((x) => !township() || x.township_id === township())
      : scopes.townships.filter((x) => !township() || x.id === township());
    for (const x of list) scopeSel.appendChild(h('option', { value: x.id }, roleSel.value === 'hall' ? x.name + ' · ' + townshipName(x.township_id) : x.name));
  };
  roleSel.addEventListener('change', fill);
  fill();
  const btn = h('button', { class: 'btn btn-primary', 'data-testid': 'enroll-issue', onclick: async () => {
    btn.disabled = true;
    clear(out);
    try {
      const r = await api('/api/enroll-codes', { method: 'POST', body: { role: roleSel.value, scope: scopeSel.value } });
      const qr = h('div', { class: 'qr', 'data-testid': 'enroll-qr' });
      const svgEl = safeSvg(r.qr_svg);
      if (svgEl) qr.appendChild(svgEl);
      out.appendChild(h('div', { class: 'code-out' }, qr, h('div', null,
        h('div', { class: 'muted' }, t('code')), h('div', { class: 'code', 'data-testid': 'enroll-code' }, r.code),
        h('div', { class: 'muted' }, t('expires') + ' ' + fmtTime(r.expires_at)),
        h('p', { class: 'muted' }, t('code_hint')))));
    } catch (e) { out.appendChild(h('div', { class: 'flash err' }, errText(e))); }
    btn.disabled = false;
  } }, t('issue'));
  return card(t('issue_code'), { testid: 'enroll-card' }, h('div', { class: 'form-row' },
    h('label', null, t('role'), roleSel), h('label', null, t('scope'), scopeSel), btn), out);
}
/* The server's QR SVG, parsed as SVG and stripped of anything active. */
function safeSvg(text) {
  if (!text) return null;
  const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.nodeName.toLowerCase() !== 'svg' || doc.querySelector('parsererror')) return null;
  root.querySelectorAll('script, foreignObject, iframe, a').forEach((n) => n.remove());
  for (const el of [root, ...root.querySelectorAll('*')]) {
    for (const a of Array.from(el.attributes)) {
      if (/^on/i.test(a.name) || /href$/i.test(a.name) || a.name === 'style') el.removeAttribute(a.name);
    }
  }
  return document.importNode(root, true);
}

/* A column's value for reading: money as yuan, instants as time, codes
 * translated, halls by name.  The raw value stays in data-raw. */
function showValue(v, col) {
  if (v === null || v === undefined) return h('span', { class: 'v null' }, '—');
  let text = typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (col && typeof v === 'number' && /_fen$/.test(col)) text = yuan(v);
  else if (col && typeof v === 'number' && /_at$/.test(col)) text = fmtTime(v);
  else if (col === 'meal_period' || col === 'mode' || col === 'kind' || col === 'category' || col === 'status') text = tl('', v);
  else if (col === 'hall_id' && state.scopes) { const x = state.scopes.halls.find((hh) => hh.id === v); if (x) text = x.name; }
  else if (/_id$/.test(col || '') && /^[0-9a-f]{32}$/.test(text)) text = shortId(text);
  return h('span', { class: 'v', 'data-raw': typeof v === 'object' ? JSON.stringify(v) : String(v) }, text);
}
function sameValue(a, b) { return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b); }

async function viewConflicts(p) {
  const tw = township();
  const status = p.status === 'resolved' ? 'resolved' : 'open';
  const d = await api('/api/conflicts' + qs({ status, township: tw }));
  const parts = [];
  if (state.flash) { parts.push(h('div', { class: 'flash', 'data-testid': 'flash' }, state.flash)); state.flash = null; }
  parts.push(h('div', { class: 'form-row' },
    h('div', { class: 'tabs' },
      h('a', { href: '#/conflicts' + qs({ township: state.params.township }), class: status === 'open' ? 'on' : '', 'data-testid': 'tab-open' }, t('open')),
      h('a', { href: '#/conflicts' + qs({ status: 'resolved', township: state.params.township }), class: status === 'resolved' ? 'on' : '', 'data-testid': 'tab-resolved' }, t('resolved'))),
    h('span', { class: 'muted' }, t('resolve_note')),
    h('span', { class: 'spacer' }), csvLink('conflicts', 'conflicts', { status, township: tw })));
  if (!d.conflicts.length) parts.push(h('div', { class: 'card' }, h('div', { class: 'empty', 'data-testid': 'no-conflicts' }, status === 'open' ? t('no_conflicts') : t('no_resolved'))));
  for (const c of d.conflicts) parts.push(conflictCard(c, status));
  return { page: h('div', { class: 'content', 'data-testid': 'view-conflicts', 'data-count': d.conflicts.length }, parts) };
}
function conflictCard(c, status) {
  const actions = (c.actions || []).map((a) => (typeof a === 'string' ? a : a.action));
  const picks = {};   /* column -> {side, value} */
  const rows = [];
  const editable = status === 'open' && actions.includes('apply');
  /* Read-only records (a stopped claim) show only what says something. */
  const columns = (c.columns || []).filter((col) => editable ||
    (col.name !== 'id' && !(col.current == null && col.winner == null && col.loser == null)));
  const showCur = editable || columns.some((col) => col.current != null);
  const showWin = editable || columns.some((col) => col.winner != null);
  for (const col of columns) {
    const name = col.name;
    const group = 'c' + c.id + '-' + name;
    const init = sameValue(col.current, col.winner) ? 'winner' : sameValue(col.current, col.loser) ? 'loser' : 'current';
    picks[name] = { side: init, value: col[init] };
    const labels = {};
    const edit = h('input', { class: 'edit', type: 'text', placeholder: t('edit'), 'data-testid': 'edit-' + name, disabled: !editable });
    const mark = () => {
      for (const k of Object.keys(labels)) labels[k].classList.toggle('on', picks[name].side === k);
      edit.classList.toggle('on', picks[name].side === 'edit');
    };
    const option = (side) => {
      const radio = h('input', { type: 'radio', name: group, value: side, checked: init === side, disabled: !editable,
        'data-testid': 'pick-' + name + '-' + side, onchange: () => { picks[name] = { side, value: col[side] }; edit.value = ''; mark(); } });
      labels[side] = h('label', { class: 'side' }, radio, showValue(col[side], name));
      return labels[side];
    };
    edit.addEventListener('input', () => {
      if (edit.value === '') { picks[name] = { side: init, value: col[init] }; const r = labels[init] && labels[init].querySelector('input'); if (r) r.checked = true; }
      else {
        let val = edit.value;
        if (typeof col.current === 'number' || typeof col.winner === 'number') { const n = Number(val); if (val.trim() !== '' && !Number.isNaN(n)) val = n; }
        picks[name] = { side: 'edit', value: val };
        Object.values(labels).forEach((l) => { l.querySelector('input').checked = false; });
      }
      mark();
    });
    const label = h('td', null, h('b', null, tl('c_', name)), h('div', { class: 'muted mono' }, name));
    if (editable) {
      rows.push(h('tr', { 'data-testid': 'col-' + name }, label,
        h('td', { class: 'val', 'data-testid': 'cur-' + name }, showValue(col.current, name)),
        h('td', { class: 'pick' }, option('winner')), h('td', { class: 'pick' }, option('loser')),
        h('td', null, edit)));
      setTimeout(mark, 0);
    } else {
      rows.push(h('tr', { 'data-testid': 'col-' + name }, label,
        showCur ? h('td', { class: 'val', 'data-testid': 'cur-' + name }, showValue(col.current, name)) : null,
        showWin ? h('td', { class: 'val' }, showValue(col.winner, name)) : null, h('td', { class: 'val' }, showValue(col.loser, name))));
    }
  }
  const err = h('div');
  const resolve = async (action) => {
    const body = { action };
    if (action === 'apply') {
      body.values = {};
      for (const col of columns) body.values[col.name] = picks[col.name].value;
      if (columns.every((col) => sameValue(picks[col.name].value, col.current))) body.action = 'keep', delete body.values;
    }
    clear(err);
    try {
      await api('/api/conflicts/' + encodeURIComponent(c.id) + '/resolve', { method: 'POST', body });
      state.flash = t('resolved_ok');
      render();
    } catch (e) { err.appendChild(h('div', { class: 'flash err', 'data-testid': 'resolve-error' }, errText(e))); }
  };
  const buttons = [];
  if (status === 'open') {
    if (actions.includes('accept_unsubsidised')) buttons.push(h('button', { class: 'btn', 'data-testid': 'act-accept_unsubsidised', onclick: () => resolve('accept_unsubsidised') }, t('accept_unsubsidised')));
    if (actions.includes('keep')) buttons.push(h('button', { class: 'btn', 'data-testid': 'act-keep', onclick: () => resolve('keep') }, c.kind === 'duplicate_claim' ? t('keep_dup') : t('keep')));
    if (actions.includes('apply')) buttons.push(h('button', { class: 'btn btn-primary', 'data-testid': 'act-apply', onclick: () => resolve('apply') }, t('apply')));
  }
  const res = c.resolution;
  return h('section', { class: 'card conflict', 'data-testid': 'conflict', 'data-id': c.id, 'data-row': c.row_id, 'data-kind': c.kind, 'data-table': c.table },
    h('header', null, h('span', { class: 'tag ' + (c.kind === 'duplicate_claim' ? 'warn' : 'info') }, tl('k_', c.kind)),
      h('h3', null, tl('t_', c.table), c.senior && c.senior.name ? h('span', { class: 'senior', 'data-testid': 'conflict-senior' }, ' · ' + c.senior.name) : null),
      h('span', { class: 'hint mono' }, t('row') + ' ' + shortId(c.row_id)),
      h('div', { class: 'tools' }, h('span', { class: 'muted' }, fmtTime(c.created_at)))),
    h('div', { class: 'body' }, h('div', { class: 'meta' },
      h('span', null, t('township') + '：' + (c.township || '—')), h('span', null, t('from_device') + '：', h('span', { class: 'mono' }, shortId(c.device_id))),
      res || c.resolved_at ? h('span', { 'data-testid': 'resolution', 'data-action': res && res.action },
        h('span', { class: 'tag ok' }, t('resolution') + '：' + (res && typeof res === 'object' ? tl('', res.action || '') : String(res || ''))),
        (c.resolved_by || (res && res.by)) ? ' ' + (c.resolved_by || res.by) : '',
        (c.resolved_at || (res && res.at)) ? ' · ' + fmtTime(c.resolved_at || res.at) : '') : null)),
    !columns.length ? null : (!showCur && !showWin)
      ? h('div', { class: 'tbl-wrap' }, h('table', { class: 'tbl cmp-tbl one-side' },
          h('thead', null, h('tr', null, h('th', null, ''), columns.map((col) => h('th', null, tl('c_', col.name))))),
          h('tbody', null, h('tr', { 'data-testid': 'loser-row' }, h('td', null, h('b', null, c.kind === 'duplicate_claim' ? t('dup_loser') : t('loser'))),
            columns.map((col) => h('td', { class: 'val', 'data-testid': 'loser-' + col.name },
              col.name === 'senior_id' && c.senior && c.senior.name && c.senior.id === col.loser ? c.senior.name : showValue(col.loser, col.name)))))))
      : columns.length ? h('div', { class: 'tbl-wrap' }, h('table', { class: 'tbl cmp-tbl' },
      h('thead', null, h('tr', null, h('th', null, t('field')), showCur ? h('th', null, t('current')) : null,
        showWin ? h('th', null, c.kind === 'duplicate_claim' ? t('dup_winner') : t('winner')) : null,
        h('th', null, c.kind === 'duplicate_claim' ? t('dup_loser') : t('loser')), editable ? h('th', null, t('edit')) : null)),
      h('tbody', null, rows))) : null,
    err,
    buttons.length ? h('div', { class: 'actions' }, h('span', { class: 'note' }, c.kind === 'duplicate_claim' ? t('duplicates_hint') : ''), buttons) : null);
}

async function viewReport(p) {
  const tw = township();
  const month = p.month || undefined;
  const r = await api('/api/report' + qs({ month, year: month ? month.slice(0, 4) : undefined, township: tw }));
  const M = r.month, Y = r.year;
  const rows = [
    ['meals', 'r_meals', t('times')], ['subsidy_fen', 'r_subsidy_fen', t('yuan')], ['retrofits_completed', 'r_retrofits_completed', t('households')],
    ['retrofit_target', 'r_retrofit_target', t('households')], ['_progress', 'r_progress', '%'], ['seniors_visited', 'r_seniors_visited', t('people')],
    ['cash_fen', 'r_cash_fen', t('yuan')], ['goods_value_fen', 'r_goods_value_fen', t('yuan')]];
  const cell = (obj, k, which) => {
    if (k === '_progress') return h('td', { class: 'num', 'data-testid': 'report-' + which + '-progress' }, pct(obj.retrofits_completed, obj.retrofit_target));
    const v = obj[k];
    return h('td', { class: 'num', 'data-testid': 'report-' + which + '-' + k, 'data-value': v }, isMoneyKey(k) ? yuan(v).replace('¥', '') : num(v));
  };
  const scopeName = tw ? townshipName(tw) : (state.scopes && state.scopes.county) || t('all_townships');
  /* The period: asked for, or as the server reports it, or this month in
   * China's time (UTC+8) when the server does not say. */
  const period = r.period || {};
  const monthStr = p.month || period.month || (typeof M.month === 'string' ? M.month : '') ||
    new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 7);
  const yearStr = String(period.year || (Y && typeof Y.year !== 'object' && Y.year) || monthStr.slice(0, 4));
  const doc = h('div', { class: 'report', 'data-testid': 'report' },
    h('h1', null, t('report_title', { scope: scopeName })),
    h('div', { class: 'rsub' }, t('report_sub', { month: monthLabel(monthStr), year: yearStr })),
    h('table', null, h('thead', null, h('tr', null, h('th', null, t('item')), h('th', null, lang === 'zh' ? '单位' : 'Unit'), h('th', null, t('month_col')), h('th', null, t('year_col')))),
      h('tbody', null, rows.map(([k, label, unit]) => h('tr', null, h('td', { class: 'item' }, t(label)), h('td', null, unit), cell(M, k, 'month'), cell(Y, k, 'year'))))),
    h('div', { class: 'notes' }, t('report_notes')),
    h('div', { class: 'sign' }, h('span', null, t('made_by') + (tw ? townshipName(tw) : t('bureau'))), h('span', null, t('reviewer') + '________'),
      h('span', null, t('made_at') + new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 10))));
  const bar = h('div', { class: 'form-row no-print' }, h('span', { class: 'spacer' }),
    h('button', { class: 'btn btn-primary', 'data-testid': 'print', onclick: () => window.print() }, t('print')),
    csvLink('report', 'report', { month: monthStr || undefined, year: yearStr, township: tw }));
  return { page: h('div', { class: 'content', 'data-testid': 'view-report', 'data-month': monthStr }, bar, doc), month: monthStr };
}

const VIEW_FN = { overview: viewOverview, meals: viewMeals, retrofits: viewRetrofits, visits: viewVisits,
  devices: viewDevices, conflicts: viewConflicts, report: viewReport };
const PERIOD = { overview: 'month', meals: 'month', retrofits: 'year', visits: 'month', report: 'month' };

/* ---- shell ---------------------------------------------------------- */

let renderSeq = 0;
let openConflicts = null;

function langSwitch() {
  return h('div', { class: 'langs', role: 'group' },
    h('button', { class: lang === 'zh' ? 'on' : '', 'data-testid': 'lang-zh', onclick: () => setLang('zh') }, '中文'),
    h('button', { class: lang === 'en' ? 'on' : '', 'data-testid': 'lang-en', onclick: () => setLang('en') }, 'EN'));
}

function renderLogin(root, message) {
  const nameIn = h('input', { name: 'name', autocomplete: 'username', required: true, 'data-testid': 'login-name' });
  const passIn = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const errEl = h('div', { class: 'login-error hidden', 'data-testid': 'login-error', role: 'alert' });
  if (message) { errEl.textContent = message; errEl.classList.remove('hidden'); }
  const form = h('form', { class: 'login-card', 'data-testid': 'login-form', onsubmit: async (ev) => {
    ev.preventDefault();
    errEl.classList.add('hidden');
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const r = await api('/api/login', { method: 'POST', body: { name: nameIn.value, password: passIn.value } });
      state.user = r.user; state.csrf = r.csrf; state.scopes = null;
      await loadScopes();
      render();
    } catch (e) {
      errEl.textContent = e.code === 'rate_limited' ? t('rate_limited') : e.code === 'bad_credentials' ? t('login_failed') : errText(e);
      errEl.classList.remove('hidden');
      passIn.value = '';
      passIn.focus();
    }
    btn.disabled = false;
  } },
    h('div', { class: 'brand' }, logo(), h('h1', null, t('app'))),
    h('p', { class: 'sub' }, t('bureau')),
    h('label', null, t('name'), nameIn), h('label', null, t('password'), passIn),
    h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-submit' }, t('login')),
    errEl,
    h('div', { class: 'foot' }, h('span', null, t('login_hint')), langSwitch()));
  clear(root).appendChild(h('div', { class: 'login-wrap' }, form));
  nameIn.focus();
}

async function loadScopes() {
  try { state.scopes = await api('/api/scopes'); } catch (e) { state.scopes = { townships: [], halls: [] }; }
}
async function refreshBadge() {
  try {
    const d = await api('/api/conflicts' + qs({ status: 'open', township: township() }), { quiet: true });
    openConflicts = d.conflicts.length;
  } catch (e) { openConflicts = null; }
  const b = document.querySelector('[data-testid="nav-conflicts-badge"]');
  if (b) { b.textContent = openConflicts ? String(openConflicts) : ''; b.classList.toggle('hidden', !openConflicts); }
}

function renderShell(root) {
  const u = state.user;
  const nav = h('nav', null, VIEWS.map((v) => h('a', { href: '#/' + v + qs(state.params.township ? { township: state.params.township } : {}),
    class: state.route === v ? 'active' : '', 'data-testid': 'nav-' + v }, icon(v), t(v),
    v === 'conflicts' ? h('span', { class: 'badge' + (openConflicts ? '' : ' hidden'), 'data-testid': 'nav-conflicts-badge' }, openConflicts || '') : null)));
  const side = h('aside', { class: 'sidebar' },
    h('div', { class: 'brand' }, logo(), h('div', null, h('b', null, t('app')), h('span', null, t('bureau')))),
    nav,
    h('div', { class: 'who', 'data-testid': 'who', 'data-role': u.role },
      h('b', null, u.name), h('span', null, t(u.role) + (u.township ? ' · ' + u.township : '')),
      h('button', { 'data-testid': 'logout', onclick: logout }, t('logout'))));
  const controls = [];
  const period = PERIOD[state.route];
  if (period === 'month') controls.push(monthControl(state.params.month));
  if (period === 'year') controls.push(yearControl(state.params.year));
  if (u.role === 'township_supervisor') {
    controls.push(h('label', { class: 'control' }, t('township'), h('select', { disabled: true, 'data-testid': 'township' },
      h('option', { value: u.township_id }, u.township || townshipName(u.township_id)))));
  } else if (state.scopes && state.scopes.townships.length) {
    controls.push(h('label', { class: 'control' }, t('township'), h('select', { 'data-testid': 'township', onchange: (ev) => setParam('township', ev.target.value) },
      h('option', { value: '' }, t('all_townships')),
      state.scopes.townships.map((x) => h('option', { value: x.id, selected: state.params.township === x.id }, x.name)))));
  }
  const top = h('header', { class: 'topbar' },
    h('div', null, h('h2', { 'data-testid': 'page-title' }, t(state.route + '_t')),
      h('div', { class: 'crumb' }, townshipName(township()))),
    h('span', { class: 'spacer' }), controls, langSwitch());
  const main = h('main', { class: 'main' }, top, h('div', { 'data-testid': 'view', class: 'view' }, h('div', { class: 'content' }, h('div', { class: 'empty' }, t('loading')))));
  clear(root).appendChild(h('div', { class: 'shell' }, side, main));
  return main;
}

async function logout() {
  try { await api('/api/logout', { method: 'POST', body: {}, quiet: true }); } catch (e) { /* ended anyway */ }
  state.user = null; state.csrf = null; state.scopes = null;
  render();
}

async function render() {
  const root = document.getElementById('app');
  const seq = ++renderSeq;
  tipOff();
  if (!state.user) { renderLogin(root, state.expired ? t('e_no_session') : null); state.expired = false; return; }
  const main = renderShell(root);
  const slot = main.querySelector('[data-testid="view"]');
  try {
    const out = await VIEW_FN[state.route](state.params);
    if (seq !== renderSeq) return;
    clear(slot).appendChild(out.page);
    paintLegend(out.page);
    drawCharts(out.page);
    const mi = main.querySelector('[data-testid="month"]');
    if (mi && out.month && !state.params.month) {
      if (!Array.from(mi.options).some((o) => o.value === out.month)) mi.insertBefore(h('option', { value: out.month }, monthLabel(out.month)), mi.firstChild);
      mi.value = out.month;
    }
    slot.setAttribute('data-ready', '1');
  } catch (e) {
    if (seq !== renderSeq || !state.user) return;
    clear(slot).appendChild(h('div', { class: 'content' }, errorBox(e)));
    slot.setAttribute('data-ready', 'error');
  }
  refreshBadge();
}

async function boot() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('app');
  parseHash();
  try {
    const me = await api('/api/me', { quiet: true });
    state.user = me.user; state.csrf = me.csrf;
    await loadScopes();
  } catch (e) { state.user = null; }
  render();
}
boot();
})();
