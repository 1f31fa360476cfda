using BenchmarkDotNet.Attributes;
using EptFuzz.Contract;
using EptFuzz.Impl.Hypervisor;

namespace EptFuzz.Benchmarks;

/// <summary>
/// Throughput of the hypervisor's operations on live tables, each followed by draining its effects
/// (as the runner does every step): 512 4 KiB pages of one page table mapped then unmapped, their
/// permissions changed, and a 2 MiB page split and merged. Times are per operation.
/// </summary>
[MemoryDiagnoser]
public class OperationBenchmarks
{
    private const int Pages = 512;
    private const EptPermissions Rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;
    private const EptPermissions Read = EptPermissions.ReadAccess;
    private static readonly Gpa Base = new(0x4000_0000);
    private static readonly Gpa Huge = new(0x8000_0000);

    private readonly List<HypervisorEffect> effects = new(1024);
    private EptHypervisor hv = null!;

    [GlobalSetup]
    public void Setup()
    {
        hv = new EptHypervisor();
        Check(hv.Configure(CpuCapabilities.Default));
        // One 4 KiB page stays mapped so that the page table under Base is never freed: map and
        // unmap then measure the entries, not table allocation.
        Check(hv.Map(new Gpa(Base.Value + (Pages * 4096UL)), new Hpa(0x1000_0000), 4096, Rwx, MemoryType.WB, false));
        Check(hv.Map(Huge, new Hpa(0x2_0000_0000), 1UL << 21, Rwx, MemoryType.WB, false));
        Drain();
    }

    /// <summary>One map plus one unmap of a 4 KiB page (the pair is the operation).</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void MapUnmap4K()
    {
        for (int i = 0; i < Pages; i++)
        {
            Check(hv.Map(new Gpa(Base.Value + ((ulong)i << 12)), new Hpa(0x3000_0000 + ((ulong)i << 12)), 4096, Rwx, MemoryType.WB, false));
        }

        Drain();
        for (int i = 0; i < Pages; i++)
        {
            Check(hv.Unmap(new Gpa(Base.Value + ((ulong)i << 12)), 4096));
        }

        Drain();
    }

    /// <summary>Two protects of a mapped 4 KiB page (read-only, then back), each an INVEPT-owing live change.</summary>
    [Benchmark(OperationsPerInvoke = 2)]
    public void Protect4K()
    {
        Check(hv.Protect(new Gpa(Base.Value + (Pages * 4096UL)), 4096, Read));
        Check(hv.Protect(new Gpa(Base.Value + (Pages * 4096UL)), 4096, Rwx));
        Drain();
    }

    /// <summary>A 2 MiB page split into 512 4 KiB pages and merged back (the pair is the operation).</summary>
    [Benchmark]
    public void SplitMerge2M()
    {
        Check(hv.Split(Huge));
        Check(hv.Merge(Huge, 1UL << 21));
        Drain();
    }

    private void Drain()
    {
        effects.Clear();
        hv.DrainEffects(effects);
    }

    private static void Check(ApiResult result)
    {
        if (result != ApiResult.Ok)
        {
            throw new InvalidOperationException($"benchmark operation failed: {result}");
        }
    }
}
