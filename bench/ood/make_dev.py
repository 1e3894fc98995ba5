#!/usr/bin/env python3
"""Build bench/ood/dev.txt: 400 out-of-domain prompts used ONLY to choose settings
(the confidence threshold); bench/ood/test.txt is the hand-written set we report on.

- 200 English sentences from ../shared/data/fra-eng.tsv (English = column 1): only
  lines whose 0-based index is even (odd ones stay free for other uses), 4-15 words,
  deduplicated, shuffled with a fixed seed.
- 200 Chinese prompts built from templates on everyday topics the corpus lacks.

Every candidate is dropped if it is too close to a prompt of data/chatterbot.tsv:
after normalization (lowercase, punctuation/symbols removed, spaces collapsed) it
equals a corpus prompt, or the Jaccard overlap of its token sets with one is >= 0.6
(tokens = words for English, characters for text with Chinese characters).
Obvious greetings / small talk are dropped too (a chatbot should answer those).

Standard library only, deterministic, idempotent.  Run from the repo root:
    python3 bench/ood/make_dev.py
"""
import os
import random
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "data", "chatterbot.tsv")
FRA_ENG = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "fra-eng.tsv"))
OUT = os.path.join(ROOT, "bench", "ood", "dev.txt")

SEED = 20240517
N_EN = 200
N_ZH = 200
MIN_WORDS, MAX_WORDS = 4, 15
JACCARD_MAX = 0.6

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
SMALL_TALK = re.compile(
    r"\b(hello|hi|hey|thanks|thank you|good (morning|afternoon|evening|night)|"
    r"goodbye|bye|how are you|nice to meet you|what's your name|what is your name)\b")


def normalize(text):
    """Lowercase, drop punctuation and symbols (ASCII and CJK), collapse spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return " ".join(text.split())


def is_chinese(text):
    return bool(CJK.search(text))


def tokens(norm):
    """Words for English, characters (spaces ignored) for Chinese."""
    if is_chinese(norm):
        return frozenset(c for c in norm if not c.isspace())
    return frozenset(norm.split())


def jaccard(a, b):
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class CorpusGuard:
    def __init__(self, prompts):
        self.exact = set()
        self.toks = []
        for p in prompts:
            n = normalize(p)
            if not n:
                continue
            self.exact.add(n)
            self.toks.append(tokens(n))

    def too_close(self, text):
        n = normalize(text)
        if n in self.exact:
            return True
        t = tokens(n)
        return any(jaccard(t, c) >= JACCARD_MAX for c in self.toks)


def load_corpus_prompts():
    en, zh = [], []
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            prompt = line.rstrip("\n").split("\t", 1)[0].strip()
            if prompt:
                (zh if is_chinese(prompt) else en).append(prompt)
    return en, zh


def english_part(guard, rng):
    seen, pool = set(), []
    with open(FRA_ENG, encoding="utf-8") as f:
        for idx, line in enumerate(f):
            if idx % 2:                      # keep even indices only
                continue
            sent = " ".join(line.rstrip("\n").split("\t", 1)[0].split())
            if not (MIN_WORDS <= len(sent.split()) <= MAX_WORDS):
                continue
            key = normalize(sent)
            if key in seen:
                continue
            seen.add(key)
            pool.append(sent)
    rng.shuffle(pool)
    out = []
    for sent in pool:
        if SMALL_TALK.search(sent.lower()):
            continue
        if guard.too_close(sent):
            continue
        out.append(sent)
        if len(out) == N_EN:
            return out
    sys.exit(f"not enough English sentences: {len(out)}")


# ---------------------------------------------------------------- Chinese templates
CITIES = ["北京", "上海", "广州", "成都", "杭州", "西安",
          "武汉", "南京", "重庆", "青岛", "厦门", "长沙"]
DAYS = ["今天", "明天", "后天", "这个周末", "下周一"]
DISHES = ["红烧肉", "西红柿炒鸡蛋", "麻婆豆腐", "韭菜饺子", "宫保鸡丁", "酸菜鱼", "糖醋排骨",
          "蛋炒饭", "回锅肉", "小笼包", "可乐鸡翅", "清蒸鲈鱼"]
DISH_STEPS = [("红烧肉", "炖"), ("排骨汤", "炖"), ("小笼包", "蒸"), ("鲈鱼", "蒸"), ("馒头", "蒸"),
              ("韭菜饺子", "煮"), ("茶叶蛋", "煮"), ("绿豆汤", "煮"),
              ("鸡翅", "腌"), ("牛排", "腌")]
SEASONINGS = ["料酒", "白糖", "生抽", "老抽", "姜片", "淀粉", "花椒"]
ITEMS = [("苹果", "斤"), ("鸡蛋", "斤"), ("猪肉", "斤"), ("大米", "袋"), ("牛奶", "箱"),
         ("洗衣液", "瓶"), ("西瓜", "斤"), ("食用油", "桶"), ("卫生纸", "提"), ("矿泉水", "箱")]
SHOPS = ["楼下超市", "菜市场", "网上商城", "便利店", "批发市场"]
TEAMS = ["广东队", "辽宁队", "北京国安", "上海申花", "山东泰山", "浙江队", "新疆队", "成都蓉城"]
BIKE_FAULTS = ["链条掉了", "轮胎漏气", "刹车不灵", "车把歪了", "脚蹬子松了", "变速器换不了挡",
               "后轮一直响", "车铃坏了"]
BIKE_PARTS = ["内胎", "刹车片", "链条", "车座", "车灯", "外胎", "脚蹬"]
DOCS = ["身份证", "护照", "驾驶证", "社保卡", "居住证", "银行卡", "港澳通行证"]
OFFICES = ["附近的银行", "邮局", "派出所", "社区医院", "快递站", "市图书馆", "车管所", "营业厅"]
PLACES = ["火车站", "机场", "人民公园", "市中心医院", "省博物馆", "大学城", "汽车南站", "体育馆"]
APPLIANCES = ["洗衣机", "冰箱", "空调", "热水器", "微波炉", "电饭煲", "抽油烟机"]
APPL_FAULTS = ["不工作", "有怪声", "一直跳闸", "显示故障代码", "按键没反应"]
COURIERS = ["顺丰", "中通", "圆通", "京东物流", "邮政"]
PARCEL = ["三天了还没到", "显示签收但我没收到", "外包装破了", "地址写错了", "一直没有更新物流"]
PLANTS = ["绿萝", "多肉", "吊兰", "发财树", "月季", "仙人掌"]
PETS = ["小狗", "小猫", "仓鼠", "兔子"]
PET_Q = ["一天喂几次", "不吃东西怎么办", "多大可以打疫苗", "掉毛很厉害怎么办"]


def chinese_families():
    fam = {}
    fam["weather"] = ([f"{c}{d}的天气怎么样？" for c in CITIES for d in DAYS] +
                      [f"{c}{d}会下雨吗？" for c in CITIES for d in DAYS] +
                      [f"{d}{c}最高气温多少度？" for c in CITIES for d in DAYS])
    fam["train"] = ([f"从{a}到{b}的高铁票多少钱？" for a in CITIES for b in CITIES if a != b] +
                    [f"{d}从{a}去{b}的火车还有票吗？"
                     for d in DAYS for a in CITIES[:6] for b in CITIES[6:]] +
                    [f"怎么改签{d}去{b}的火车票？" for d in DAYS for b in CITIES])
    fam["cooking"] = ([f"{x}怎么做才好吃？" for x in DISHES] +
                      [f"做{x}要不要放{s}？" for x in DISHES for s in SEASONINGS] +
                      [f"{x}要{v}多长时间？" for x, v in DISH_STEPS])
    fam["prices"] = ([f"{s}的{i}现在多少钱一{u}？" for s in SHOPS for i, u in ITEMS] +
                     [f"{i}这周在{s}打折吗？" for s in SHOPS for i, _ in ITEMS])
    fam["sports"] = ([f"昨晚{a}对{b}的比分是多少？" for a in TEAMS for b in TEAMS if a != b] +
                     [f"{a}{d}的比赛几点开始？" for a in TEAMS for d in DAYS])
    fam["bike"] = ([f"自行车{f}怎么修？" for f in BIKE_FAULTS] +
                   [f"自行车的{p}坏了去哪里换？" for p in BIKE_PARTS] +
                   [f"换一个自行车{p}大概要多少钱？" for p in BIKE_PARTS])
    fam["errands"] = ([f"{o}周末几点开门？" for o in OFFICES] +
                      [f"办{d}需要带什么材料？" for d in DOCS] +
                      [f"{d}丢了怎么补办？" for d in DOCS])
    fam["directions"] = ([f"去{p}坐几路公交车？" for p in PLACES] +
                         [f"从这里走到{p}要多久？" for p in PLACES] +
                         [f"{p}附近哪里可以停车？" for p in PLACES])
    fam["appliances"] = [f"家里的{a}{f}怎么办？" for a in APPLIANCES for f in APPL_FAULTS]
    fam["parcels"] = ([f"我的快递{s}怎么办？" for s in PARCEL] +
                      [f"{c}寄到{city}一般要几天？" for c in COURIERS for city in CITIES])
    fam["home"] = ([f"{p}多久浇一次水？" for p in PLANTS] +
                   [f"{p}叶子发黄是什么原因？" for p in PLANTS] +
                   [f"家里的{p}{q}？" for p in PETS for q in PET_Q])
    return fam


def chinese_part(guard, rng):
    fams = chinese_families()
    queues = []
    for name in sorted(fams):
        items = list(dict.fromkeys(fams[name]))      # dedupe, keep order
        rng.shuffle(items)
        queues.append(items)
    out, seen = [], set()
    while len(out) < N_ZH and any(queues):
        for q in queues:                             # round-robin over topics
            while q:
                cand = q.pop(0)
                key = normalize(cand)
                if key in seen or guard.too_close(cand):
                    continue
                seen.add(key)
                out.append(cand)
                break
            if len(out) == N_ZH:
                break
    if len(out) < N_ZH:
        sys.exit(f"not enough Chinese prompts: {len(out)}")
    return out


def main():
    en_prompts, zh_prompts = load_corpus_prompts()
    rng = random.Random(SEED)
    english = english_part(CorpusGuard(en_prompts), rng)
    chinese = chinese_part(CorpusGuard(zh_prompts), rng)
    lines = english + chinese
    assert len(lines) == len({normalize(line) for line in lines}) == N_EN + N_ZH
    assert all("\t" not in line and line.strip() == line and line for line in lines)
    tmp = OUT + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, OUT)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(english)} English + {len(chinese)} Chinese")


if __name__ == "__main__":
    main()
