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
    /// <param name="consultIntent">False once the intent's answers would be discarded anyway (after a raw write made everything unknown).</param>
    /// <returns>Null when the step is not an operation the hypervisor answers (<c>cpu</c> is read before the case runs).</returns>
    public static OperationOutcome? Apply(IEptHypervisor hypervisor, IntentModel intent, Step step, bool consultIntent)
    {
        ApiResult result;
        ApiResult? intended = null;
        bool raw = false;
        bool tables = true;
        switch (step)
        {
            case EptpStep e:
                result = hypervisor.SetEptp(e.ToRequest());
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
            case ControlsStep c:
                result = hypervisor.SetControls(c.ToControls());
                intent.Controls = hypervisor.Controls;
                break;
            case GuestStep g:
                result = hypervisor.SetGuestPaging(g.ToGuestPaging(), g.TablesStart ?? default, g.TablesEnd ?? default);
                tables = false;
                break;
            case MapStep m:
                result = hypervisor.Map(m.Gpa, m.Hpa, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false);
                intended = consultIntent ? intent.Map(m.Gpa.Value, m.Hpa.Value, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false) : null;
                break;
            case UnmapStep u:
                result = hypervisor.Unmap(u.Gpa, u.Size);
                intended = consultIntent ? intent.Unmap(u.Gpa.Value, u.Size) : null;
                break;
            case ProtectStep p:
                result = hypervisor.Protect(p.Gpa, p.Size, p.Permissions);
                intended = consultIntent ? intent.Protect(p.Gpa.Value, p.Size, p.Permissions) : null;
                break;
            case RetypeStep r:
                result = hypervisor.Retype(r.Gpa, r.Size, r.MemoryType, r.IgnorePat ?? false);
                intended = consultIntent ? intent.Retype(r.Gpa.Value, r.Size, r.MemoryType, r.IgnorePat ?? false) : null;
                break;
            case SplitStep s:
                result = hypervisor.Split(s.Gpa);
                intended = consultIntent ? intent.Split(s.Gpa.Value) : null;
                break;
            case MergeStep m:
                result = hypervisor.Merge(m.Gpa, m.Size);
                intended = consultIntent ? intent.Merge(m.Gpa.Value, m.Size) : null;
                break;
            case MemoryStep m:
                result = hypervisor.AddMemoryRange(m.Start, m.End, m.MemoryType);
                intended = intent.AddMemoryRange(m.Start.Value, m.End.Value, m.MemoryType);
                break;
            case IdentityMapStep im:
                result = hypervisor.IdentityMap(im.Offset ?? 0, im.OffsetFrom ?? default);
                intended = consultIntent ? intent.IdentityMap(im.Offset ?? 0, (im.OffsetFrom ?? default).Value) : null;
                break;
            case InveptStep inv:
                result = hypervisor.Invept(inv.Type);
                break;
            case EditStep e:
                result = hypervisor.Edit(e.Gpa, e.Level, e.Set ?? 0, e.Clear ?? 0, e.LeafHpa);
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    ulong span = e.Level.Span();
                    ulong start = e.Gpa.Value & ~(span - 1);
                    intent.MarkUnknown(start, start + span);
                }

                break;
            case PokeStep p:
                result = hypervisor.Poke(p.Hpa, p.Value);
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    // Any host page may be (or become) an EPT table page; the harness cannot tell.
                    intent.MarkAllUnknown();
                }

                break;
            case GMapStep gm:
                result = hypervisor.GMap(gm.Gva, gm.Gpa, gm.Size, gm.Permissions.HasFlag(GuestPagePermissions.Writable), gm.Permissions.HasFlag(GuestPagePermissions.User), gm.Permissions.HasFlag(GuestPagePermissions.Executable));
                raw = true;
                tables = false;
                break;
            case GEditStep ge:
                result = hypervisor.GEdit(ge.Gva, ge.Level, ge.Set ?? 0, ge.Clear ?? 0);
                raw = true;
                tables = false;
                break;
            default:
                return null;
        }

        return new OperationOutcome(result, intended, raw, tables);
    }
}
