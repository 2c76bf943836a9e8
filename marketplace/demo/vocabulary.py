"""Realistic Chinese patent text for demo data and synthetic benchmarks.

Titles and abstracts are assembled from per-field vocabularies (materials, objects, methods,
effects, application scenarios) with the IPC main groups such patents are classified in.
Deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    ipc: tuple[str, ...]
    subjects: tuple[str, ...]
    materials: tuple[str, ...]
    methods: tuple[str, ...]
    effects: tuple[str, ...]
    scenarios: tuple[str, ...]


FIELDS: tuple[Field, ...] = (
    Field(
        "新能源与储能",
        ("H01M 4/583", "H01M 10/0525", "H01M 4/62", "H02J 7/00", "H01M 8/10"),
        ("锂电池负极材料", "锂离子电池正极材料", "固态电解质", "钠离子电池", "燃料电池膜电极", "储能系统", "电池管理系统"),
        ("石墨烯", "硅碳复合", "磷酸铁锂", "三元镍钴锰", "碳纳米管", "普鲁士蓝类似物", "硫化物"),
        ("制备方法", "包覆改性方法", "回收方法", "热管理方法", "均衡控制方法"),
        ("显著提高了电池的循环寿命和倍率性能", "降低了材料成本且工艺简单", "提升了能量密度与安全性", "减少了容量衰减"),
        ("新能源汽车动力电池", "电网储能", "消费电子产品", "两轮电动车"),
    ),
    Field(
        "新材料及其应用",
        ("C01B 32/184", "C08L 67/04", "C04B 35/10", "C22C 21/00", "B82Y 30/00"),
        ("复合材料", "涂层", "陶瓷材料", "铝合金", "可降解塑料", "纳米纤维膜", "气凝胶"),
        ("石墨烯", "聚乳酸", "碳纤维", "氧化铝", "钛合金", "二氧化硅", "稀土"),
        ("制备方法", "表面处理方法", "成型工艺", "热处理方法", "连续化生产装置"),
        ("具有优异的力学性能和耐腐蚀性", "导热系数提高约三成", "生产能耗明显降低", "可在自然环境中完全降解"),
        ("航空航天结构件", "建筑节能", "包装材料", "电子散热"),
    ),
    Field(
        "电子信息",
        ("G06F 16/30", "G06N 3/08", "H04L 9/32", "G06V 10/82", "H04W 72/04"),
        ("图像识别方法", "数据加密传输系统", "边缘计算调度方法", "推荐算法", "语音识别装置", "区块链存证系统"),
        ("深度学习", "卷积神经网络", "联邦学习", "知识图谱", "物联网", "区块链"),
        ("训练方法", "识别方法", "调度方法", "检索方法", "部署方法"),
        ("识别准确率提升明显", "降低了通信开销与时延", "保护了用户隐私", "可在低算力设备上实时运行"),
        ("智慧城市", "工业质检", "金融风控", "智能交通"),
    ),
    Field(
        "生物医药和医疗器械",
        ("A61K 36/00", "A61K 39/395", "C12N 15/11", "A61B 5/00", "A61P 35/00"),
        ("中药组合物", "单克隆抗体", "基因编辑载体", "检测试剂盒", "可穿戴监测设备", "药物缓释微球"),
        ("黄芪多糖", "CRISPR", "纳米载药", "重组蛋白", "生物传感器", "壳聚糖"),
        ("制备方法", "检测方法", "纯化工艺", "筛选方法", "应用"),
        ("毒副作用小且疗效确切", "检测灵敏度高、特异性强", "提高了药物的生物利用度", "操作简便、成本低"),
        ("肿瘤辅助治疗", "慢病管理", "基层医疗机构", "动物疫病防控"),
    ),
    Field(
        "先进制造",
        ("B23K 26/38", "B25J 9/16", "B33Y 10/00", "G05B 19/418", "B23Q 17/09"),
        ("焊接机器人", "激光切割装置", "数控机床", "增材制造设备", "智能产线", "减速器"),
        ("视觉引导", "激光", "3D打印", "数字孪生", "伺服", "柔性夹具"),
        ("控制方法", "装配方法", "检测装置", "标定方法", "加工工艺"),
        ("加工精度达到微米级", "生产效率提高一倍以上", "降低了人工成本", "设备故障率明显降低"),
        ("汽车零部件制造", "船舶焊接", "精密模具", "航空发动机叶片"),
    ),
    Field(
        "环境保护与资源综合利用",
        ("C02F 9/00", "B01D 53/86", "B09C 1/08", "C02F 3/30", "B01J 20/20"),
        ("污水处理系统", "烟气脱硝催化剂", "土壤修复剂", "吸附材料", "固废资源化装置"),
        ("生物炭", "改性沸石", "微生物菌剂", "光催化", "膜生物反应器"),
        ("处理方法", "制备方法", "再生方法", "资源化利用方法"),
        ("污染物去除率超过百分之九十", "运行费用低", "无二次污染", "可循环再生使用"),
        ("工业园区废水", "农村生活污水", "重金属污染农田", "燃煤电厂"),
    ),
    Field(
        "农业",
        ("A01G 9/14", "A01N 63/20", "A23K 10/30", "A01B 79/00", "C05G 3/00"),
        ("智能温室", "生物农药", "缓释肥料", "饲料添加剂", "节水灌溉系统", "种子处理剂"),
        ("水肥一体化", "枯草芽孢杆菌", "秸秆", "物联网监测", "微藻"),
        ("种植方法", "制备方法", "控制方法", "发酵工艺"),
        ("作物增产百分之十五以上", "减少化肥用量", "提高了饲料转化率", "节水效果显著"),
        ("设施农业", "丘陵山区种植", "畜禽养殖", "盐碱地改良"),
    ),
    Field(
        "现代交通",
        ("B60L 53/00", "B61L 27/00", "G08G 1/01", "B62D 6/00", "B60W 30/09"),
        ("充电桩", "轨道交通信号系统", "交通流预测方法", "线控转向系统", "自动驾驶决策方法"),
        ("车路协同", "毫米波雷达", "激光雷达", "北斗定位", "无线充电"),
        ("控制方法", "预测方法", "故障诊断方法", "调度系统"),
        ("缩短了通行时间", "提高了行车安全性", "充电效率提高", "降低了运维成本"),
        ("城市公交", "高速公路", "港口集卡", "城际铁路"),
    ),
)

PREFIXES = ("一种", "一种基于", "一种用于")


def title_for(rng: random.Random, field: Field) -> str:
    subject = rng.choice(field.subjects)
    material = rng.choice(field.materials)
    method = rng.choice(field.methods)
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"一种{material}{subject}及其{method}"
    if pattern == 1:
        return f"一种基于{material}的{subject}"
    if pattern == 2:
        return f"{material}{subject}的{method}"
    return f"一种用于{rng.choice(field.scenarios)}的{material}{subject}"


def abstract_for(rng: random.Random, field: Field, title: str) -> str:
    effect = rng.choice(field.effects)
    scenario = rng.choice(field.scenarios)
    parts = rng.sample(field.materials, k=min(2, len(field.materials)))
    return (
        f"本发明公开了{title.removeprefix('一种')}，采用{parts[0]}与{parts[1]}相结合的技术方案，"
        f"通过优化结构与工艺参数，{effect}。该技术可应用于{scenario}等领域，具有良好的产业化前景。"
    )


INVENTOR_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐"
INVENTOR_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "军", "杰", "涛", "明", "超", "秀英", "建华", "志强", "海燕", "晓东")


def inventors_for(rng: random.Random) -> list[str]:
    return [rng.choice(INVENTOR_SURNAMES) + rng.choice(INVENTOR_GIVEN) for _ in range(rng.randint(1, 4))]
