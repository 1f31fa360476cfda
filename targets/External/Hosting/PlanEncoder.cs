using EptFuzz.Contract;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>
/// Turns a planned call (<see cref="PlannedStep.Call"/>) into the command the target will get, without
/// running anything: a "hypervisor" whose every operation writes its frame. A call the harness
/// does itself (raw steps, guest paging: it writes memory then) sends no command:
/// <see cref="HarnessStep"/> says so; the target must be idle while it runs. It also tracks what
/// makes later probes write memory (accessed/dirty flags in the EPTP, guest paging).
/// </summary>
internal sealed class PlanEncoder : IEptHypervisor
{
    private readonly FrameWriter writer = new();

    /// <summary>The call just encoded is the harness's own: no command, and the target idle meanwhile.</summary>
    public bool HarnessStep { get; private set; }

    /// <summary>Accessed/dirty flags on in the EPTP the calls so far load: every access may write the tables.</summary>
    public bool AccessedDirty { get; private set; }

    /// <summary>Guest paging on after the calls so far: a guest-linear access may write the guest's tables.</summary>
    public bool GuestPagingOn { get; private set; }

    /// <summary>Starts a case: the default EPTP (no accessed/dirty flags), guest paging off.</summary>
    public void Reset()
    {
        AccessedDirty = false;
        GuestPagingOn = false;
    }

    public string Name => "plan";

    /// <summary>Encodes <paramref name="call"/>; the frame, when it has one, is <see cref="Frame"/>.</summary>
    public void Encode(Func<IEptHypervisor, ApiResult> call)
    {
        HarnessStep = false;
        call(this);
    }

    public ReadOnlySpan<byte> Frame => writer.Finish();

    private ApiResult Harness()
    {
        HarnessStep = true;
        return ApiResult.Ok;
    }

    public ApiResult Configure(CpuCapabilities cpu) => throw new InvalidOperationException("a plan has no Configure step");

    public ApiResult SetEptp(EptpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        // Said as if the call succeeds: a refused one keeps the flags off, and then only costs look-ahead.
        if (request.Raw is ulong raw)
        {
            // EPTP[6]: accessed and dirty flags.
            AccessedDirty |= (raw & (1UL << 6)) != 0;
            return Harness();
        }

        AccessedDirty |= request.AccessedDirty;
        Commands.SetEptp(writer, request);
        return ApiResult.Ok;
    }

    public ApiResult SetControls(VmxControls controls)
    {
        Commands.SetControls(writer, controls);
        return ApiResult.Ok;
    }

    public ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat)
    {
        Commands.Map(writer, gpa, hpa, size, permissions, memoryType, ignorePat);
        return ApiResult.Ok;
    }

    public ApiResult Unmap(Gpa gpa, ulong size)
    {
        Commands.Unmap(writer, gpa, size);
        return ApiResult.Ok;
    }

    public ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions)
    {
        Commands.Protect(writer, gpa, size, permissions);
        return ApiResult.Ok;
    }

    public ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat)
    {
        Commands.Retype(writer, gpa, size, memoryType, ignorePat);
        return ApiResult.Ok;
    }

    public ApiResult Split(Gpa gpa)
    {
        Commands.Split(writer, gpa);
        return ApiResult.Ok;
    }

    public ApiResult Merge(Gpa gpa, ulong size)
    {
        Commands.Merge(writer, gpa, size);
        return ApiResult.Ok;
    }

    public ApiResult AddMemoryRange(Gpa start, Gpa end, MemoryType memoryType)
    {
        Commands.Memory(writer, start, end, memoryType);
        return ApiResult.Ok;
    }

    public ApiResult IdentityMap(ulong offset, Gpa offsetFrom)
    {
        Commands.IdentityMap(writer, offset, offsetFrom);
        return ApiResult.Ok;
    }

    public ApiResult Invept(InveptType type)
    {
        Commands.Invept(writer, type);
        return ApiResult.Ok;
    }

    public ApiResult Edit(Gpa gpa, EptLevel level, ulong set, ulong clear, Hpa? leafHpa) => Harness();

    public ApiResult Poke(Hpa hpa, ulong value) => Harness();

    public ApiResult SetGuestPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd)
    {
        ArgumentNullException.ThrowIfNull(paging);
        GuestPagingOn |= paging.Enabled;
        return Harness();
    }

    public ApiResult GMap(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable) => Harness();

    public ApiResult GEdit(Gva gva, EptLevel level, ulong set, ulong clear) => Harness();

    public ulong Eptp => throw NotAHypervisor();

    public VmxControls Controls => throw NotAHypervisor();

    public GuestPaging GuestPaging => throw NotAHypervisor();

    public IHostMemoryImage Memory => throw NotAHypervisor();

    public int DrainEffects(List<HypervisorEffect> into) => throw NotAHypervisor();

    private static InvalidOperationException NotAHypervisor() => new("a planned call only makes operation calls");
}
