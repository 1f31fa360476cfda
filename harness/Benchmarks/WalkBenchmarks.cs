using BenchmarkDotNet.Attributes;
using EptFuzz.Contract;
using EptFuzz.Impl.Cpu;
using EptFuzz.Impl.Hypervisor;
using Ref = EptFuzz.Reference;

namespace EptFuzz.Benchmarks;

/// <summary>
/// One translation of a guest access: the reference model's walk, the implementation's walk (TLB
/// off), and the implementation's TLB hit, for 4K, 2M and 1G leaves and a guest-linear access
/// through 4-level guest paging. All on the same tables; EPT A/D off so every call is identical.
/// </summary>
[MemoryDiagnoser]
public class WalkBenchmarks
{
    private VirtualCpu walker = null!;
    private VirtualCpu cached = null!;
    private Ref.TranslationRequest request = null!;
    private Access access;

    [Params("4K", "2M", "1G", "guest-linear")]
    public string Leaf { get; set; } = "4K";

    [GlobalSetup]
    public void Setup()
    {
        var cpu = CpuCapabilities.Default;
        var hv = new EptHypervisor();
        hv.Configure(cpu);
        hv.SetEptp(new EptpRequest { MemoryType = MemoryType.WB, WalkLength = 4, AccessedDirty = false });
        const EptPermissions rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;
        Check(hv.Map(new Gpa(0x1000), new Hpa(0x5000), 4096, rwx, MemoryType.WB, false));
        Check(hv.Map(new Gpa(0x4020_0000), new Hpa(0x8000_0000), 1UL << 21, rwx, MemoryType.WB, false));
        Check(hv.Map(new Gpa(0x80_4000_0000), new Hpa(0x1_0000_0000), 1UL << 30, rwx, MemoryType.WB, false));
        var paging = GuestPaging.Off;
        switch (Leaf)
        {
            case "4K":
                access = Access.Physical(AccessKind.Read, new Gpa(0x1234));
                break;
            case "2M":
                access = Access.Physical(AccessKind.Read, new Gpa(0x4021_2345));
                break;
            case "1G":
                access = Access.Physical(AccessKind.Read, new Gpa(0x80_4765_4321));
                break;
            default:
                Check(hv.Map(new Gpa(0x60_0000), new Hpa(0x20_0000), 1UL << 21, rwx, MemoryType.WB, false));
                paging = new GuestPaging { Enabled = true, Cr3 = new Gpa(0x60_0000) };
                Check(hv.SetGuestPaging(paging, new Gpa(0x60_1000), new Gpa(0x61_0000)));
                Check(hv.GMap(new Gva(0x7f_8000_0000), new Gpa(0x4020_0000), 1UL << 21, writable: true, user: false, executable: true));
                // Guest A bits once, so that later walks write nothing.
                access = Access.ThroughPaging(AccessKind.Read, new Gva(0x7f_8001_2345), 0);
                break;
        }

        walker = new VirtualCpu(cpu, hv.Memory) { CachingEnabled = false };
        cached = new VirtualCpu(cpu, hv.Memory);
        foreach (var v in new[] { walker, cached })
        {
            v.SetEptp(hv.Eptp);
            v.SetGuestPaging(paging);
        }

        walker.Access(access);
        cached.Access(access);
        request = new Ref.TranslationRequest(
            Ref.ProcessorCapabilities.Default,
            new Ref.Eptp(hv.Eptp),
            new Ref.VmExecutionControls(false),
            paging.Enabled ? new Ref.GuestPagingState { Paging = true, Cr3 = paging.Cr3.Value } : Ref.GuestPagingState.Off,
            new MemoryView(hv.Memory),
            access.Linear ? Ref.GuestAccess.AtLinear(Ref.AccessType.Read, new Ref.Gla(access.Address), 0) : Ref.GuestAccess.Physical(Ref.AccessType.Read, new Ref.Gpa(access.Address)));
        if (Ref.EptModel.Evaluate(request).Outcome is not Ref.Translated)
        {
            throw new InvalidOperationException("the reference must translate the benchmark access");
        }
    }

    [Benchmark(Baseline = true)]
    public object ReferenceWalk() => Ref.EptModel.Evaluate(request);

    [Benchmark]
    public OutcomeKind ImplementationWalk() => walker.Access(access).Kind;

    [Benchmark]
    public OutcomeKind ImplementationTlbHit() => cached.Access(access).Kind;

    private static void Check(ApiResult result)
    {
        if (result != ApiResult.Ok)
        {
            throw new InvalidOperationException($"setup failed: {result}");
        }
    }

    private sealed class MemoryView(IHostMemory memory) : Ref.IPhysicalMemory
    {
        public ulong Read(Ref.Hpa address) => memory.Read(new Hpa(address.Value));

        public void Write(Ref.Hpa address, ulong value) => memory.Write(new Hpa(address.Value), value);
    }
}
