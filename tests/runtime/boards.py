"""`/proc/cpuinfo` as a Raspberry Pi 4 (64-bit and 32-bit OS), a Pi 5, a Jetson Orin and an x86 server print it;
a Jetson's /etc/nv_tegra_release, and a fake Jetson root."""

PI4_64 = """processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Revision	: c03114
Serial		: 10000000deadbeef
Model		: Raspberry Pi 4 Model B Rev 1.4
"""
PI4_32 = """processor	: 0
model name	: ARMv7 Processor rev 3 (v7l)
BogoMIPS	: 108.00
Features	: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer	: 0x41
CPU architecture: 7
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Model		: Raspberry Pi 4 Model B Rev 1.4
"""
PI5 = """processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

Model		: Raspberry Pi 5 Model B Rev 1.0
"""
ORIN = """processor	: 0
model name	: ARMv8 Processor rev 1 (v8l)
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x1
CPU part	: 0xd42
CPU revision	: 1
"""
X86 = """processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel(R) Xeon(R) CPU @ 2.20GHz
flags		: fpu vme sse sse2 avx avx2 fma
"""

# /etc/nv_tegra_release in the form Jetson Linux writes it: JetPack 6.1 (L4T R36.4.0, an Orin), JetPack 6.0
# (R36.3.0) and JetPack 5.1.2 (R35.4.1)
L4T_36_4 = (
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
    "DATE: Fri Sep 13 04:36:44 UTC 2024\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
L4T_36_3 = (
    "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
    "DATE: Mon May  6 17:34:21 UTC 2024\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
L4T_35_4 = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)


def _library(folder, name, version):
    """``name.VERSION`` in ``folder``, with the ``name.MAJOR`` link to it that the packages make."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.{version}").write_bytes(b"\x7fELF")
    (folder / f"{name}.{version.split('.')[0]}").symlink_to(f"{name}.{version}")


def jetson_root(tmp_path, release=L4T_36_4, *, cuda="12.6.68", cudnn="9.3.0", tensorrt="10.3.0"):
    """A fake root laid out as JetPack 6.1 lays out a Jetson: the release file, CUDA under
    /usr/local/cuda-12.6 (with the /usr/local/cuda and lib64 links), cuDNN and TensorRT in
    /usr/lib/aarch64-linux-gnu. A library given as ``None`` is left out."""
    root = tmp_path / "jetson"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text(release)
    if cuda is not None:
        toolkit = root / "usr" / "local" / f"cuda-{'.'.join(cuda.split('.')[:2])}"
        _library(toolkit / "targets" / "aarch64-linux" / "lib", "libcudart.so", cuda)
        (toolkit / "lib64").symlink_to("targets/aarch64-linux/lib")
        (root / "usr" / "local" / "cuda").symlink_to(toolkit.name)
    libs = root / "usr" / "lib" / "aarch64-linux-gnu"
    if cudnn is not None:
        _library(libs, "libcudnn.so", cudnn)
    if tensorrt is not None:
        _library(libs, "libnvinfer.so", tensorrt)
    return root
