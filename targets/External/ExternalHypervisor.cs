using EptFuzz.Contract;
using EptFuzz.Targets.External.Hosting;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External;

/// <summary>
/// One case on an external target: the EPT API answered by the target process over the protocol,
/// on the host that the worker thread keeps across cases. Raw steps (<c>edit</c>, <c>poke</c>) are
/// the harness's, written straight into the arena, as a boot loader or a debugger would.
/// </summary>
public sealed class ExternalHypervisor : IEptHypervisor, ILookAheadHypervisor, IDisposable
{
    private readonly ExternalHost host;
    private readonly List<HypervisorEffect> effects = [];
    private readonly HostView memory;
    private bool configured;
    private GuestTables? guest;

    internal ExternalHypervisor(ExternalHost host)
    {
        this.host = host;
        memory = new HostView(host);
    }

    public string Name => host.Name;

    public ulong Eptp { get; private set; }

    public VmxControls Controls { get; private set; }

    public GuestPaging GuestPaging => guest?.Paging ?? GuestPaging.Off;

    public IHostMemoryImage Memory => memory;

    /// <summary>Where the target keeps a journal, the case's operations go to it ahead, in one write (<see cref="Configure"/>).</summary>
    public void Plan(IReadOnlyList<PlannedStep> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        host.Plan(steps);
    }

    public ApiResult Configure(CpuCapabilities cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        if (configured)
        {
            throw new InvalidOperationException("Configure is called once");
        }

        configured = true;
        guest = new GuestTables(host, cpu.MaxPhyAddr, RawWrite);
        // As the case format says: until the case sets one, the EPTP is WB, 4 levels, no A/D.
        var (reset, setEptp, eptp) = host.Reset(cpu, new EptpRequest(), effects);
        if (reset != ApiResult.Ok)
        {
            return reset;
        }

        Eptp = eptp;
        return setEptp;
    }

    public ApiResult SetEptp(EptpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Raw is ulong raw)
        {
            // All 64 bits as given: the translators walk that root; the target keeps building its own.
            Eptp = raw;
            return ApiResult.Ok;
        }

        Commands.SetEptp(host.Writer, request);
        var result = host.Execute(effects, out ulong eptp);
        host.SetEptpAnswer(eptp, result == ApiResult.Ok ? request.WalkLength : host.WalkLength);
        Eptp = eptp;
        return result;
    }

    public ApiResult SetControls(VmxControls controls)
    {
        Commands.SetControls(host.Writer, controls);
        var result = host.Execute(effects, out _);
        if (result == ApiResult.Ok)
        {
            Controls = controls;
        }

        return result;
    }

    public ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat)
    {
        Commands.Map(host.Writer, gpa, hpa, size, permissions, memoryType, ignorePat);
        return host.Execute(effects, out _);
    }

    public ApiResult Unmap(Gpa gpa, ulong size)
    {
        Commands.Unmap(host.Writer, gpa, size);
        return host.Execute(effects, out _);
    }

    public ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions)
    {
        Commands.Protect(host.Writer, gpa, size, permissions);
        return host.Execute(effects, out _);
    }

    public ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat)
    {
        Commands.Retype(host.Writer, gpa, size, memoryType, ignorePat);
        return host.Execute(effects, out _);
    }

    public ApiResult Split(Gpa gpa)
    {
        Commands.Split(host.Writer, gpa);
        return host.Execute(effects, out _);
    }

    public ApiResult Merge(Gpa gpa, ulong size)
    {
        Commands.Merge(host.Writer, gpa, size);
        return host.Execute(effects, out _);
    }

    public ApiResult AddMemoryRange(Gpa start, Gpa end, MemoryType memoryType)
    {
        Commands.Memory(host.Writer, start, end, memoryType);
        return host.Execute(effects, out _);
    }

    public ApiResult IdentityMap(ulong offset, Gpa offsetFrom)
    {
        Commands.IdentityMap(host.Writer, offset, offsetFrom);
        return host.Execute(effects, out _);
    }

    public ApiResult Invept(InveptType type)
    {
        Commands.Invept(host.Writer, type);
        return host.Execute(effects, out _);
    }

    /// <summary>The case format's raw edit, done by the harness on the target's tables in the arena.</summary>
    public ApiResult Edit(Gpa gpa, EptLevel level, ulong set, ulong clear, Hpa? leafHpa)
    {
        if (leafHpa is Hpa target && (target.Value & 0xFFF) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (gpa.Value >= 1UL << 52 || (leafHpa is Hpa high && high.Value >= 1UL << 52))
        {
            return ApiResult.OutOfRange;
        }

        var top = (EptLevel)host.WalkLength;
        if (level > top || host.Eptp == 0)
        {
            return ApiResult.NotExist;
        }

        // The reach of an entry probe (SEMANTICS.md): stop at a not-present entry or at a page above the level.
        ulong table = host.Eptp & EptGeometry.AddressMask;
        for (var current = top; current > level; current--)
        {
            ulong value = host.Read(EptGeometry.EntryAddress(table, gpa.Value, current));
            if (!EptGeometry.IsPresent(value, Controls.Mbec) || (current is EptLevel.Pde or EptLevel.Pdpte && (value & EptGeometry.LargePage) != 0))
            {
                return ApiResult.NotExist;
            }

            table = value & EptGeometry.AddressMask;
        }

        ulong entry = EptGeometry.EntryAddress(table, gpa.Value, level);
        ulong edited = host.Read(entry);
        if (leafHpa is Hpa page)
        {
            edited = (edited & ~EptGeometry.AddressMask) | page.Value | EptGeometry.LargePage;
        }

        edited = (edited & ~clear) | set;
        RawWrite(entry, edited);
        return ApiResult.Ok;
    }

    public ApiResult Poke(Hpa hpa, ulong value)
    {
        if ((hpa.Value & 7) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (hpa.Value >= host.HpaLimit)
        {
            return ApiResult.OutOfRange;
        }

        RawWrite(hpa.Value, value);
        return ApiResult.Ok;
    }

    private void RawWrite(ulong hpa, ulong value)
    {
        host.Write(hpa, value);
        effects.Add(HypervisorEffect.Of(new MemoryWrite(new Hpa(hpa), value)));
    }

    // The guest's page tables are the harness's to build, as a guest OS builds them (PROTOCOL.md);
    // a target with a guest-linear lookup is told where they are.
    public ApiResult SetGuestPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd)
    {
        ArgumentNullException.ThrowIfNull(paging);
        var result = Guest.SetPaging(paging, tablesStart, tablesEnd, Controls.Mbec);
        if (result == ApiResult.Ok && host.Declaration is { } d && d.Answers(linear: true))
        {
            byte flags = (byte)((paging.Wp ? 1 : 0) | (paging.Nxe ? 2 : 0) | (paging.Smep ? 4 : 0));
            host.Writer.Begin(Command.SetGuest).U8(paging.Enabled ? (byte)1 : (byte)0).U64(paging.Cr3.Value).U8(flags);
            var told = host.ExecuteHarness(effects);
            if (told != ApiResult.Ok)
            {
                throw new TargetFaultException(Name, TargetFaultKind.Protocol, "set-guest-result", $"answered SET_GUEST with {told}; it must answer ok");
            }
        }

        return result;
    }

    public ApiResult GMap(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable) =>
        Guest.Map(gva, gpa, size, writable, user, executable, Controls.Mbec);

    public ApiResult GEdit(Gva gva, EptLevel level, ulong set, ulong clear) => Guest.Edit(gva, level, set, clear, Controls.Mbec);

    private GuestTables Guest => guest ?? throw new InvalidOperationException("Configure must be called first");

    public int DrainEffects(List<HypervisorEffect> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        into.AddRange(effects);
        int n = effects.Count;
        effects.Clear();
        return n;
    }

    public bool ReportTablePages(List<Hpa> held, List<Hpa> roots)
    {
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(roots);
        host.HeldPages(held);
        if (host.Eptp != 0)
        {
            // EPTP form: the walk length in [5:3] tells the accounting walk a 5-level root from a 4-level one.
            roots.Add(new Hpa(host.Eptp & (EptAddress.Mask | WalkLengthBits)));
        }

        return true;
    }

    /// <summary>EPTP[5:3]: the page-walk length minus one.</summary>
    private const ulong WalkLengthBits = 7UL << 3;

    public void Dispose()
    {
        // The host (process and arena) outlives the case; the next case's RESET clears it.
    }

    /// <summary>Host memory as the target left it: the arena, and the harness's memory outside it.</summary>
    private sealed class HostView(ExternalHost host) : IHostMemoryImage
    {
        public IEnumerable<Hpa> Pages => host.Pages;

        public ulong Read(Hpa address) => host.Read(address.Value);

        public void ReadPage(Hpa page, Span<ulong> words) => host.ReadPage(page.Value, words);

        public void Write(Hpa address, ulong value) => host.Write(address.Value, value);
    }
}
