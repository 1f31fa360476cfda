using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Running;

/// <summary>What one operation step did.</summary>
/// <param name="Result">The hypervisor's answer.</param>
/// <param name="Intended">What the intent model says the answer should be, when it can say.</param>
/// <param name="Raw">The step writes raw bytes (edit, poke, guest tables): its writes may leave stale translations.</param>
/// <param name="Tables">The step's writes are the hypervisor's own EPT table writes.</param>
internal readonly record struct OperationOutcome(ApiResult Result, ApiResult? Intended, bool Raw, bool Tables);

/// <summary>Step dispatch: calls the hypervisor's API for an operation step, and the intent model beside it.</summary>
internal static class OperationDispatch
{
    /// <summary>
    /// The hypervisor call an operation step makes, as a function of the hypervisor, or null for a
    /// step that makes none: what <see cref="Apply"/> calls, for a hypervisor that looks ahead.
    /// </summary>
    public static Func<IEptHypervisor, ApiResult>? CallOf(Step step) =>
        step.Category == StepCategory.Operation && step is not CpuStep
            ? h => Call(h, step) ?? throw new InvalidOperationException($"step {step.Verb} is an operation without a hypervisor call")
            : null;

    /// <summary>Makes the step's hypervisor call; null for a step that makes none.</summary>
    private static ApiResult? Call(IEptHypervisor h, Step step) => step switch
    {
        EptpStep e => h.SetEptp(e.ToRequest()),
        ControlsStep c => h.SetControls(c.ToControls()),
        GuestStep g => h.SetGuestPaging(g.ToGuestPaging(), g.TablesStart ?? default, g.TablesEnd ?? default),
        MapStep m => h.Map(m.Gpa, m.Hpa, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false),
        UnmapStep u => h.Unmap(u.Gpa, u.Size),
        ProtectStep p => h.Protect(p.Gpa, p.Size, p.Permissions),
        RetypeStep r => h.Retype(r.Gpa, r.Size, r.MemoryType, r.IgnorePat ?? false),
        SplitStep s => h.Split(s.Gpa),
        MergeStep m => h.Merge(m.Gpa, m.Size),
        MemoryStep m => h.AddMemoryRange(m.Start, m.End, m.MemoryType),
        IdentityMapStep im => h.IdentityMap(im.Offset ?? 0, im.OffsetFrom ?? default),
        InveptStep inv => h.Invept(inv.Type),
        EditStep e => h.Edit(e.Gpa, e.Level, e.Set ?? 0, e.Clear ?? 0, e.LeafHpa),
        PokeStep p => h.Poke(p.Hpa, p.Value),
        GMapStep gm => h.GMap(gm.Gva, gm.Gpa, gm.Size, gm.Permissions.HasFlag(GuestPagePermissions.Writable), gm.Permissions.HasFlag(GuestPagePermissions.User), gm.Permissions.HasFlag(GuestPagePermissions.Executable)),
        GEditStep ge => h.GEdit(ge.Gva, ge.Level, ge.Set ?? 0, ge.Clear ?? 0),
        _ => null,
    };

    /// <param name="consultIntent">False once the intent's answers would be discarded anyway (after a raw write made everything unknown).</param>
    /// <returns>Null when the step is not an operation the hypervisor answers (<c>cpu</c> is read before the case runs).</returns>
    public static OperationOutcome? Apply(IEptHypervisor hypervisor, IntentModel intent, Step step, bool consultIntent)
    {
        if (Call(hypervisor, step) is not { } result)
        {
            return null;
        }

        ApiResult? intended = null;
        bool raw = false;
        bool tables = true;
        switch (step)
        {
            case EptpStep e:
                if (result == ApiResult.Ok)
                {
                    if (e.Raw is null)
                    {
                        intent.SetWalkLength(e.WalkLength ?? 4);
                    }
                    else
                    {
                        // The translators now walk a root the operations do not know; the
                        // hypervisor's operations keep using its own root and walk length.
                        intent.MarkAllUnknown();
                    }
                }

                break;
            case ControlsStep:
                intent.Controls = hypervisor.Controls;
                break;
            case GuestStep:
                tables = false;
                break;
            case MapStep m:
                intended = consultIntent ? intent.Map(m.Gpa.Value, m.Hpa.Value, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false) : null;
                break;
            case UnmapStep u:
                intended = consultIntent ? intent.Unmap(u.Gpa.Value, u.Size) : null;
                break;
            case ProtectStep p:
                intended = consultIntent ? intent.Protect(p.Gpa.Value, p.Size, p.Permissions) : null;
                break;
            case RetypeStep r:
                intended = consultIntent ? intent.Retype(r.Gpa.Value, r.Size, r.MemoryType, r.IgnorePat ?? false) : null;
                break;
            case SplitStep s:
                intended = consultIntent ? intent.Split(s.Gpa.Value) : null;
                break;
            case MergeStep m:
                intended = consultIntent ? intent.Merge(m.Gpa.Value, m.Size) : null;
                break;
            case MemoryStep m:
                intended = intent.AddMemoryRange(m.Start.Value, m.End.Value, m.MemoryType);
                break;
            case IdentityMapStep im:
                intended = consultIntent ? intent.IdentityMap(im.Offset ?? 0, (im.OffsetFrom ?? default).Value) : null;
                break;
            case EditStep e:
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    ulong span = e.Level.Span();
                    ulong start = e.Gpa.Value & ~(span - 1);
                    intent.MarkUnknown(start, start + span);
                }

                break;
            case PokeStep:
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    // Any host page may be (or become) an EPT table page; the harness cannot tell.
                    intent.MarkAllUnknown();
                }

                break;
            case GMapStep or GEditStep:
                raw = true;
                tables = false;
                break;
        }

        return new OperationOutcome(result, intended, raw, tables);
    }
}
