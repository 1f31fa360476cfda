using EptFuzz.Contract;
using EptFuzz.Impl.Hypervisor;

namespace EptFuzz.Corpus.Tests.Runner;

/// <summary>The implementation's hypervisor with hooks: a test plants a fault or a broken account around any call.</summary>
internal class DelegatingHypervisor : IEptHypervisor, IDisposable
{
    private readonly EptHypervisor inner = new();

    public virtual string Name => inner.Name;

    public ulong Eptp => inner.Eptp;

    public VmxControls Controls => inner.Controls;

    public GuestPaging GuestPaging => inner.GuestPaging;

    public IHostMemoryImage Memory => inner.Memory;

    /// <summary>Called before every operation with its name: throw here to plant a fault.</summary>
    public Action<string> Before { get; init; } = _ => { };

    /// <summary>Rewrites the account: (held, roots) as the implementation reports them, changed in place.</summary>
    public Action<List<Hpa>, List<Hpa>> Account { get; init; } = (_, _) => { };

    public ApiResult Configure(CpuCapabilities cpu) => inner.Configure(cpu);

    public ApiResult SetEptp(EptpRequest request) => Call("eptp", () => inner.SetEptp(request));

    public ApiResult SetControls(VmxControls controls) => Call("controls", () => inner.SetControls(controls));

    public ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat) =>
        Call("map", () => inner.Map(gpa, hpa, size, permissions, memoryType, ignorePat));

    public ApiResult Unmap(Gpa gpa, ulong size) => Call("unmap", () => inner.Unmap(gpa, size));

    public ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions) => Call("protect", () => inner.Protect(gpa, size, permissions));

    public ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat) => Call("retype", () => inner.Retype(gpa, size, memoryType, ignorePat));

    public ApiResult Split(Gpa gpa) => Call("split", () => inner.Split(gpa));

    public ApiResult Merge(Gpa gpa, ulong size) => Call("merge", () => inner.Merge(gpa, size));

    public ApiResult AddMemoryRange(Gpa start, Gpa end, MemoryType memoryType) => Call("memory", () => inner.AddMemoryRange(start, end, memoryType));

    public ApiResult IdentityMap(ulong offset, Gpa offsetFrom) => Call("identity-map", () => inner.IdentityMap(offset, offsetFrom));

    public ApiResult Invept(InveptType type) => Call("invept", () => inner.Invept(type));

    public ApiResult Edit(Gpa gpa, EptLevel level, ulong set, ulong clear, Hpa? leafHpa) => Call("edit", () => inner.Edit(gpa, level, set, clear, leafHpa));

    public ApiResult Poke(Hpa hpa, ulong value) => Call("poke", () => inner.Poke(hpa, value));

    public ApiResult SetGuestPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd) => Call("guest", () => inner.SetGuestPaging(paging, tablesStart, tablesEnd));

    public ApiResult GMap(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable) => Call("gmap", () => inner.GMap(gva, gpa, size, writable, user, executable));

    public ApiResult GEdit(Gva gva, EptLevel level, ulong set, ulong clear) => Call("gedit", () => inner.GEdit(gva, level, set, clear));

    public int DrainEffects(List<HypervisorEffect> into) => inner.DrainEffects(into);

    public bool ReportTablePages(List<Hpa> held, List<Hpa> roots)
    {
        bool kept = inner.ReportTablePages(held, roots);
        Account(held, roots);
        return kept;
    }

    public void Dispose() => inner.Dispose();

    private ApiResult Call(string verb, Func<ApiResult> call)
    {
        Before(verb);
        return call();
    }
}
