using EptFuzz.Contract;

namespace EptFuzz.Harness.Comparing;

/// <summary>
/// Exact comparison of two observations of the same probe, restricted to what both targets can
/// observe: memory type only when both report it, the final GPA of a translated access only when
/// both report it, the permissions its walk granted only when both report them, qualification bit 6 only when both model MBEC,
/// bits 9-11 only when both report advanced exit information, A/D writes only when both report
/// them, page size only when both know it. Walks and rule sets are never compared: a target may
/// legitimately serve an access from its TLB.
/// </summary>
public static class ObservationComparer
{
    /// <summary>Qualification bit 6: user-mode execute AND (MBEC only).</summary>
    public const ulong MbecQualificationBits = 1UL << 6;

    /// <summary>Qualification bits 9-11: advanced VM-exit information.</summary>
    public const ulong AdvancedQualificationBits = 0b111UL << 9;

    public static ulong QualificationMask(TargetTraits a, TargetTraits b)
    {
        ulong mask = ulong.MaxValue;
        if (!(a.HasFlag(TargetTraits.Mbec) && b.HasFlag(TargetTraits.Mbec)))
        {
            mask &= ~MbecQualificationBits;
        }

        if (!(a.HasFlag(TargetTraits.AdvancedExitInfo) && b.HasFlag(TargetTraits.AdvancedExitInfo)))
        {
            mask &= ~AdvancedQualificationBits;
        }

        return mask;
    }

    /// <summary>
    /// A translator's full answer against a software lookup's "where is it mapped": a translated
    /// access must be mapped at the same address and page size; a violation whose walk ended at an
    /// entry with bits 2:0 clear must be "not mapped", any other violation "mapped". Nothing else
    /// (misconfigurations, page faults, a violation without a walk) says where an address is mapped.
    /// </summary>
    private static Difference CompareMapping(Observation full, Observation lookup)
    {
        switch (full.Kind)
        {
            case OutcomeKind.Translated:
                if (lookup.Kind != OutcomeKind.Translated)
                {
                    return Difference.Kind;
                }

                var d = full.Hpa != lookup.Hpa ? Difference.Hpa : Difference.None;
                d |= full.PageSize != 0 && lookup.PageSize != 0 && full.PageSize != lookup.PageSize ? Difference.PageSize : Difference.None;
                // Read, write and execute as the walk grants them (the AND over its entries, PROTOCOL.md WALK).
                const EptPermissions rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;
                return (full.Permissions & rwx) != (lookup.Permissions & rwx) ? d | Difference.Permissions : d;

            case OutcomeKind.EptViolation:
                // The last EPT entry of the final guest-physical address's own walk. Under guest
                // paging the walk also lists the EPT entries of the guest's table pages and of their
                // A/D writes: only entries translating the violating GPA count.
                WalkEntry? last = null;
                bool guest = false;
                foreach (var entry in full.Walk)
                {
                    guest |= entry.Structure == WalkStructure.Guest;
                    if (entry.Structure == WalkStructure.Ept && entry.Translating == full.Gpa.Value)
                    {
                        last = entry;
                    }
                }

                if (full.GuestLinearAddressValid && (full.Qualification & (1UL << 8)) == 0)
                {
                    // The violation was on a guest paging-structure access: not the lookup's question.
                    return Difference.None;
                }

                if (last is not { } leaf)
                {
                    // Under guest paging: the final GPA's walk read nothing (beyond the walk's reach), so
                    // nothing maps it. Without a walk at all (a target that reports none) nothing is known.
                    return guest && lookup.Kind == OutcomeKind.Translated ? Difference.Kind : Difference.None;
                }

                bool mapped = (leaf.Value & 0b111) != 0;
                return mapped == (lookup.Kind == OutcomeKind.Translated) ? Difference.None : Difference.Kind;

            case OutcomeKind.GuestPageFault when (full.ErrorCode & 1) == 0:
                // Error code bit 0 clear: a guest entry on the way was not present, so nothing maps the address.
                return lookup.Kind == OutcomeKind.Translated ? Difference.Kind : Difference.None;

            default:
                return Difference.None;
        }
    }

    public static Difference Compare(Observation a, TargetTraits ta, Observation b, TargetTraits tb)
    {
        bool softA = ta.HasFlag(TargetTraits.SoftwareWalk), softB = tb.HasFlag(TargetTraits.SoftwareWalk);
        if (softA != softB)
        {
            return softA ? CompareMapping(b, a) : CompareMapping(a, b);
        }

        if (a.Kind != b.Kind)
        {
            return Difference.Kind;
        }

        var d = Difference.None;
        switch (a.Kind)
        {
            case OutcomeKind.Translated:
                if (a.Hpa != b.Hpa)
                {
                    d |= Difference.Hpa;
                }

                // PageSize 0 means "this target cannot tell".
                if (a.PageSize != 0 && b.PageSize != 0 && a.PageSize != b.PageSize)
                {
                    d |= Difference.PageSize;
                }

                if (ta.HasFlag(TargetTraits.MemoryType) && tb.HasFlag(TargetTraits.MemoryType) && a.MemoryType != b.MemoryType)
                {
                    d |= Difference.MemoryType;
                }

                if (ta.HasFlag(TargetTraits.TranslatedGpa) && tb.HasFlag(TargetTraits.TranslatedGpa) && a.Gpa != b.Gpa)
                {
                    d |= Difference.Gpa;
                }

                if (ta.HasFlag(TargetTraits.TranslatedPermissions) && tb.HasFlag(TargetTraits.TranslatedPermissions) && a.Permissions != b.Permissions)
                {
                    d |= Difference.Permissions;
                }

                break;

            case OutcomeKind.EptViolation:
                if (((a.Qualification ^ b.Qualification) & QualificationMask(ta, tb)) != 0)
                {
                    d |= Difference.Qualification;
                }

                if (a.Gpa != b.Gpa)
                {
                    d |= Difference.Gpa;
                }

                if (a.GuestLinearAddressValid != b.GuestLinearAddressValid
                    || (a.GuestLinearAddressValid && a.GuestLinearAddress != b.GuestLinearAddress))
                {
                    d |= Difference.GuestLinearAddress;
                }

                break;

            case OutcomeKind.EptMisconfiguration:
                if (a.Gpa != b.Gpa)
                {
                    d |= Difference.Gpa;
                }

                break;

            case OutcomeKind.GuestPageFault:
                if (a.ErrorCode != b.ErrorCode)
                {
                    d |= Difference.ErrorCode;
                }

                break;

            case OutcomeKind.Entry:
                if (a.EntryValue != b.EntryValue)
                {
                    d |= Difference.EntryValue;
                }

                break;

            case OutcomeKind.VmEntry:
                if (a.VmEntryOk != b.VmEntryOk)
                {
                    d |= Difference.VmEntry;
                }

                break;
        }

        if (ta.HasFlag(TargetTraits.AccessedDirtyWrites) && tb.HasFlag(TargetTraits.AccessedDirtyWrites) && !SameWrites(a.Writes, b.Writes))
        {
            d |= Difference.AccessedDirty;
        }

        return d;
    }

    /// <summary>Writes compare as a map address to final value: the order of A/D updates is not architectural.</summary>
    public static bool SameWrites(IReadOnlyList<MemoryWrite> a, IReadOnlyList<MemoryWrite> b)
    {
        if (a.Count == 0 && b.Count == 0)
        {
            return true;
        }

        return FinalValues(a).OrderBy(p => p.Key).SequenceEqual(FinalValues(b).OrderBy(p => p.Key));
    }

    public static Dictionary<ulong, ulong> FinalValues(IReadOnlyList<MemoryWrite> writes)
    {
        var map = new Dictionary<ulong, ulong>(writes.Count);
        foreach (var w in writes)
        {
            map[w.Address.Value] = w.Value;
        }

        return map;
    }
}
