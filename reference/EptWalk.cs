using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

// The EPT walk of one guest-physical address, its permission check and its A/D update.
internal sealed partial class Evaluator
{
    /// <summary>
    /// Translates one guest-physical access through EPT. Returns null and the translation when the
    /// access may proceed (its A/D flags are then already set), else the VM exit it causes.
    /// See: "Prioritization of EPT Misconfigurations and EPT Violations" (§28.2.3.3), EPT-ORDER-1.
    /// </summary>
    private AccessOutcome? TranslateGpa(in GpaAccess request, out EptTranslation translation)
    {
        translation = default;
        ulong gpa = request.Gpa.Value;
        int levels = eptp.Levels;
        EptPermissions needed = NeededPermission(request);

        // See: "EPT Translation Mechanism" (§28.2.2), EPT-WALK-1: a 4-level walk uses GPA bits
        // 47:0. Newer editions, EPT-WALK-3: a 5-level walk adds a PML5 table indexed by bits 56:48.
        Fire(levels == 5 ? RuleId.EptWalk3 : RuleId.EptWalk1);

        // See: "EPT Violations" (newer §x.3.3.2), EPT-WALK-4 / EPT-VIOL-6: with a 4-level walk,
        // GPA bits 51:48 must be 0, else the access is an EPT violation (not a misconfiguration)
        // and no entry is read; qualification bits 5:3 are then 0. Bochs and VirtualBox ignore
        // these bits (ept-rules.md §18 item 3); the model follows the newer SDM text.
        // A guest-physical address has at most 52 bits (EPT-WALK-3: "GPAs are < 2^52"). A linear
        // address used as a GPA with CR0.PG = 0 can carry bits 63:52; no walk can reach such an
        // address, so it is treated as this rule treats the bits no 4-level walk reaches
        // (a modelling choice, recorded in targets/Contract/SEMANTICS.md).
        if ((levels == 4 && (gpa & Bits.Range(51, 48)) != 0) || (gpa >> 52) != 0)
        {
            Fire(RuleId.EptWalk4);
            Fire(RuleId.EptViol6);
            return Violation(request, EptPermissions.None, entriesRead: false);
        }

        int first = walk.Count;
        ulong table = eptp.Root.Value;
        EptPermissions granted = mbec ? EptPermissions.All : EptPermissions.All & ~EptPermissions.UserModeExecute;
        for (var level = (Level)levels; ; level--)
        {
            var address = new Hpa(table | (LevelGeometry.Index(gpa, level) * 8));
            var entry = new EptEntry(Read(address));
            walk.Add(new WalkStep(Structure.Ept, level, address, entry.Raw, gpa));

            // EPT-ORDER-1a step 1, EPT-PRESENT-1: an entry with bits 2:0 (and, under MBEC, bit 10)
            // all 0 is not present: the walk stops with an EPT violation (EPT-VIOL-1).
            if (!EptEntryFormat.IsPresent(entry, mbec))
            {
                Fire(RuleId.EptPresent1);
                Fire(RuleId.EptViol1);
                NotePrecedence(granted, needed);
                NoteIgnoredWhileNotPresent(entry, level);

                // EPT-EXITQ-2: bits 3-6 AND the not-present entry in too, so they read 0.
                return Violation(request, granted & entry.Permissions, entriesRead: true);
            }

            if (mbec && (entry.Raw & 7) == 0)
            {
                // EPT-MBEC-5: under MBEC an entry whose only permission is XU (bit 10) is present.
                Fire(RuleId.EptMbec5);
            }

            // EPT-ORDER-1a steps 2-6, "EPT Misconfigurations" (§28.2.3.1): a present entry with a
            // misconfiguration stops the walk with an EPT misconfiguration.
            MisconfigCauses causes = EptEntryFormat.Misconfigurations(entry, level, capabilities, mbec);
            if (causes != MisconfigCauses.None)
            {
                NoteMisconfigurations(causes);
                if (level is Level.Pde or Level.Pdpte && entry.LargePage)
                {
                    // EPT-LARGE-1: bit 7 asks for a page the processor may not support, and a large
                    // leaf's address bits below its size are reserved.
                    Fire(RuleId.EptLarge1);
                }

                NotePrecedence(granted, needed);
                return Misconfiguration(request);
            }

            NoteEntryFormat(entry, level);
            granted &= entry.Permissions;
            if (EptEntryFormat.IsLeaf(entry, level))
            {
                PageSize size = LevelGeometry.LeafSize(level);
                ulong offsetMask = LevelGeometry.OffsetMask(size);
                translation = new EptTranslation(entry, size, granted, new Hpa((entry.Address & ~offsetMask) | (gpa & offsetMask)));
                break;
            }

            table = entry.Address;
        }

        // EPT-ORDER-1 step 3: only with the leaf known are the accumulated permissions checked.
        if (!Permits(granted, needed, request))
        {
            return Violation(request, granted, entriesRead: true);
        }

        // EPT-ORDER-1 step 4, EPT-AD-*: the access will be performed, so its A/D flags are set.
        SetEptFlags(first, request.Type == AccessType.Write);
        return null;
    }

    /// <summary>
    /// See: "EPT Violations" (§28.2.3.2), EPT-ACCESS-1: the permission each access needs.
    /// EPT-VIOL-2: a data read needs R. EPT-VIOL-3: a data write needs W (a guest-entry read under
    /// EPT A/D is a write, EPT-VIOL-5). EPT-VIOL-4: a fetch needs X. EPT-MBEC-4: under MBEC a fetch
    /// needs XS (bit 2) for a supervisor-mode linear address and XU (bit 10) for a user-mode one.
    /// </summary>
    private EptPermissions NeededPermission(in GpaAccess request) => request.Type switch
    {
        AccessType.Read => EptPermissions.ReadAccess,
        AccessType.Write => EptPermissions.WriteAccess,
        _ when mbec && request.UserModeAddress => EptPermissions.UserModeExecute,
        _ => EptPermissions.ExecuteAccess,
    };

    /// <summary>The permission check after the leaf, recording the rule that decides it.</summary>
    private bool Permits(EptPermissions granted, EptPermissions needed, in GpaAccess request)
    {
        Fire(RuleId.EptAccess1);
        bool allowed = (granted & needed) == needed;
        if (request.Type == AccessType.InstructionFetch && mbec)
        {
            // EPT-MBEC-2/3: under MBEC bit 2 is supervisor-mode execute and bit 10 user-mode
            // execute; which applies depends on the linear address (U/S = 1 at every guest level,
            // or CR0.PG = 0, makes it user-mode), not on CPL.
            Fire(RuleId.EptMbec2);
            Fire(RuleId.EptMbec3);
        }

        if ((granted & (EptPermissions.ReadAccess | EptPermissions.WriteAccess)) == 0
            && (granted & (EptPermissions.ExecuteAccess | EptPermissions.UserModeExecute)) != 0)
        {
            // EPT-XO-1: an execute-only translation (allowed by CAP[0]) permits fetches only.
            Fire(RuleId.EptXo1);
        }

        if (allowed)
        {
            return true;
        }

        if (request.Purpose == GpaPurpose.GuestEntryRead && accessedDirty)
        {
            // EPT-VIOL-5: with EPT A/D on, reading a guest paging-structure entry needs W.
            Fire(RuleId.EptViol5);
        }

        Fire(request.Type switch
        {
            AccessType.Read => RuleId.EptViol2,
            AccessType.Write => RuleId.EptViol3,
            _ when mbec => RuleId.EptMbec4,
            _ => RuleId.EptViol4,
        });
        return false;
    }

    /// <summary>
    /// See: "Accessed and Dirty Flags for EPT" (§28.2.4). EPT-AD-1: only with EPTP[6] = 1; bits 8
    /// and 9 are otherwise ignored and never written. EPT-AD-2: every entry used by the walk gets
    /// A (bit 8). EPT-AD-3: a write sets D (bit 9) in the leaf; the leaf's A and D are set in one
    /// write. EPT-AD-5: flags already set stay set and are not written again. EPT-AD-6: only an
    /// access that passed its permission check gets here (the SDM sets the flags "before
    /// allowing" the access; a failing access sets nothing).
    /// </summary>
    private void SetEptFlags(int firstStep, bool write)
    {
        Fire(RuleId.EptAd1);
        if (!accessedDirty)
        {
            return;
        }

        int last = walk.Count - 1;
        for (int i = firstStep; i <= last; i++)
        {
            ulong flags = 1UL << EptEntry.AccessedBit;
            if (i == last && write)
            {
                flags |= 1UL << EptEntry.DirtyBit;
            }

            Hpa address = walk[i].Address;
            ulong before = Read(address);
            ulong missing = flags & ~before;
            if (missing != flags)
            {
                Fire(RuleId.EptAd5);
            }

            if ((missing & (1UL << EptEntry.AccessedBit)) != 0)
            {
                Fire(RuleId.EptAd2);
            }

            if ((missing & (1UL << EptEntry.DirtyBit)) != 0)
            {
                Fire(RuleId.EptAd3);
            }

            if (missing != 0)
            {
                writes.Add(new PhysicalWrite(address, before | flags));
            }
        }
    }

    /// <summary>
    /// The VM exit for an EPT violation. See: "Exit Qualification for EPT Violations" (Table 27-7).
    /// </summary>
    private EptViolation Violation(in GpaAccess request, EptPermissions granted, bool entriesRead)
    {
        Fire(RuleId.EptExitq1);
        Fire(RuleId.EptExit1);
        if (accessedDirty)
        {
            // EPT-AD-6: a violation sets no A/D flag for the failing access.
            Fire(RuleId.EptAd6);
        }

        // Bits 0-2 and 7-11 were fixed by the kind of access (EPT-EXITQ-1, EPT-EXIT-2).
        ulong qualification = request.Qualification;
        if ((qualification & ExitQualification.FinalTranslation) != 0 && capabilities.AdvancedExitInformation)
        {
            Fire(RuleId.EptExit2);
        }

        // EPT-EXITQ-2: bits 3-5 are the AND of bits 0-2 over every entry read for this GPA.
        if (entriesRead)
        {
            Fire(RuleId.EptExitq2);
        }

        qualification |= ((granted & EptPermissions.ReadAccess) != 0 ? ExitQualification.Readable : 0)
            | ((granted & EptPermissions.WriteAccess) != 0 ? ExitQualification.Writable : 0)
            | ((granted & EptPermissions.ExecuteAccess) != 0 ? ExitQualification.Executable : 0);

        // EPT-MBEC-6: under MBEC bit 6 is the AND of bit 10 (user-mode executable) for every EPT
        // violation. Without MBEC it is undefined (2016: reserved, 0); the model reports 0. Bochs
        // sets it only for fetches (ept-rules.md §18 item 8); the model follows the SDM.
        if (mbec)
        {
            Fire(RuleId.EptMbec6);
            if ((granted & EptPermissions.UserModeExecute) != 0)
            {
                qualification |= ExitQualification.UserExecutable;
            }
        }

        // EPT-EXIT-1: the guest-physical-address field holds the GPA whose translation failed; the
        // guest-linear-address field is valid exactly when bit 7 is 1.
        bool glaValid = (qualification & ExitQualification.GuestLinearAddressValid) != 0;
        return new EptViolation(new ExitQualification(qualification), request.Gpa, glaValid ? request.Gla : default, glaValid);
    }

    /// <summary>
    /// See: "EPT Misconfigurations" (§28.2.3.1), EPT-MISCONFIG-8: VM exit 49 with exit qualification
    /// 0, the GPA being translated, no guest-linear address.
    /// </summary>
    private EptMisconfiguration Misconfiguration(in GpaAccess request)
    {
        Fire(RuleId.EptMisconfig8);
        Fire(RuleId.EptExit1);
        return new EptMisconfiguration(request.Gpa);
    }

    private void NoteMisconfigurations(MisconfigCauses causes)
    {
        if ((causes & MisconfigCauses.WriteWithoutRead) != 0)
        {
            Fire(RuleId.EptMisconfig1);
        }

        if ((causes & MisconfigCauses.ExecuteOnlyUnsupported) != 0)
        {
            Fire(RuleId.EptMisconfig2);
        }

        if ((causes & MisconfigCauses.UserExecuteOnlyUnsupported) != 0)
        {
            Fire(RuleId.EptMisconfig3);
        }

        if ((causes & MisconfigCauses.ReservedBit) != 0)
        {
            Fire(RuleId.EptMisconfig4);
        }

        if ((causes & MisconfigCauses.InvalidMemoryType) != 0)
        {
            Fire(RuleId.EptMisconfig5);
        }

        if ((causes & MisconfigCauses.AddressAboveMaxPhyAddr) != 0)
        {
            Fire(RuleId.EptMisconfig6);
        }

        // EPT-ORDER-3: several causes in one entry all give the same exit; their order is moot.
        if (((byte)causes & ((byte)causes - 1)) != 0)
        {
            Fire(RuleId.EptOrder3);
        }
    }

    /// <summary>
    /// EPT-ORDER-1: an upper level that already denies the access does not stop the walk; a
    /// lower not-present or misconfigured entry decides the outcome.
    /// </summary>
    private void NotePrecedence(EptPermissions granted, EptPermissions needed)
    {
        if ((granted & needed) != needed)
        {
            Fire(RuleId.EptOrder1);
        }
    }

    /// <summary>
    /// EPT-PRESENT-2: bits 62:3 of a not-present entry are ignored. EPT-ORDER-1a step 1: being not
    /// present is decided before any misconfiguration check, so values that would be misconfigured
    /// in a present entry give a violation here.
    /// </summary>
    private void NoteIgnoredWhileNotPresent(EptEntry entry, Level level)
    {
        if ((entry.Raw & Bits.Range(62, 3)) == 0)
        {
            return;
        }

        Fire(RuleId.EptPresent2);
        if (EptEntryFormat.Misconfigurations(entry, level, capabilities, mbec) != MisconfigCauses.None)
        {
            Fire(RuleId.EptOrder1a);
        }
    }

    /// <summary>Records the format rule (EPT-ENTRY-1 … 6, EPT-SSS-1) that read a well-formed present entry.</summary>
    private void NoteEntryFormat(EptEntry entry, Level level)
    {
        bool leaf = EptEntryFormat.IsLeaf(entry, level);
        Fire(level switch
        {
            Level.Pml5e or Level.Pml4e => RuleId.EptEntry1,
            Level.Pdpte when leaf => RuleId.EptEntry3,
            Level.Pde when leaf => RuleId.EptEntry4,
            Level.Pte => RuleId.EptEntry5,
            _ => RuleId.EptEntry2,
        });

        ulong ignored = EptEntryFormat.IgnoredBits(entry, level, capabilities, mbec, accessedDirty, eptp.SupervisorShadowStackEnabled);
        if ((entry.Raw & ignored) != 0)
        {
            Fire(RuleId.EptEntry6);
        }

        if (leaf && entry.SupervisorShadowStack)
        {
            // EPT-SSS-1: bit 60 of a leaf matters only to supervisor shadow-stack accesses with
            // EPTP[7] = 1; the model's accesses are never shadow-stack accesses.
            Fire(RuleId.EptSss1);
        }

    }
}
