using BenchmarkDotNet.Attributes;
using EptFuzz.Contract;
using EptFuzz.Impl.Hypervisor;

namespace EptFuzz.Benchmarks;

/// <summary>
/// Building an identity map of a PC-like memory map from scratch (a fresh hypervisor each time):
/// 640 KiB WB, the legacy hole UC up to 1 MiB, WB up to 3 GiB, a 1 GiB UC MMIO hole below 4 GiB,
/// and the rest of the RAM WB above 4 GiB. Pages are the largest the alignment and types allow.
/// </summary>
[MemoryDiagnoser]
public class IdentityMapBenchmarks
{
    private const ulong Gib = 1UL << 30;
    private readonly List<HypervisorEffect> effects = new(1 << 16);

    [Params(4, 32, 1024)]
    public int RamGiB { get; set; }

    [Benchmark]
    public int IdentityMap()
    {
        var hv = new EptHypervisor();
        Check(hv.Configure(CpuCapabilities.Default));
        ulong ram = (ulong)RamGiB * Gib;
        Check(hv.AddMemoryRange(new Gpa(0), new Gpa(0xA_0000), MemoryType.WB));
        Check(hv.AddMemoryRange(new Gpa(0xA_0000), new Gpa(0x10_0000), MemoryType.UC));
        Check(hv.AddMemoryRange(new Gpa(0x10_0000), new Gpa(3 * Gib), MemoryType.WB));
        Check(hv.AddMemoryRange(new Gpa(3 * Gib), new Gpa(4 * Gib), MemoryType.UC));
        // The RAM the hole displaced is remapped above 4 GiB, as firmware does.
        Check(hv.AddMemoryRange(new Gpa(4 * Gib), new Gpa(ram + Gib), MemoryType.WB));
        Check(hv.IdentityMap(0, default));
        effects.Clear();
        return hv.DrainEffects(effects);
    }

    private static void Check(ApiResult result)
    {
        if (result != ApiResult.Ok)
        {
            throw new InvalidOperationException($"identity map set-up failed: {result}");
        }
    }
}
